# etcd-metaproxy image: `docker build -t etcd-metaproxy:0.1.0 .` (docker-compose.yml builds it).
# Build stage: install every dependency from the lock file, compile to dist/, drop dev deps.
FROM node:20.18.1-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

# Runtime stage: compiled code, production dependencies and the protos (loaded at run time).
FROM node:20.18.1-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY proto ./proto
COPY bin ./bin
RUN ln -s /app/bin/etcd-metaproxy.js /usr/local/bin/etcd-metaproxy
# jemalloc instead of glibc's malloc: after a member outage's catch-up glibc kept ~120 MiB of
# freed memory; jemalloc gave it back (README "Bounded memory"). Unset LD_PRELOAD to go back.
RUN apt-get update && apt-get install -y --no-install-recommends libjemalloc2 && rm -rf /var/lib/apt/lists/* \
 && ln -s "$(ls /usr/lib/*/libjemalloc.so.2 | head -n 1)" /usr/local/lib/libjemalloc.so.2
ENV LD_PRELOAD=/usr/local/lib/libjemalloc.so.2
USER node
# Client gRPC (etcd v3 API) and /metrics, /health, /readyz, /livez.
EXPOSE 2379 9379
ENTRYPOINT ["etcd-metaproxy"]
CMD ["serve", "--config", "/etc/etcd-metaproxy/proxy.yaml"]

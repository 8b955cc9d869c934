/**
 * etcd (Go grpc) rejects a request above --max-request-bytes + 512 KiB with RESOURCE_EXHAUSTED
 * "grpc: received message larger than max (N vs. M)" before reading it whole. grpc-js enforces
 * the same limit just as early, but words it "Received message larger than max (N vs M)" and
 * offers no hook for that status (its base call sends it directly). Clients match on etcd's
 * text, so the proxy rewords exactly that status. Checked by the e2e tests (a 2 MiB and a
 * 68 MiB message), which fail if a grpc-js upgrade changes its wording or structure.
 */
import { createRequire } from 'node:module';
import { status as grpcStatus } from '@grpc/grpc-js';

interface Status {
  code: number;
  details: string;
}

interface BaseCallPrototype {
  sendStatus(this: unknown, status: Status): void;
}

const require = createRequire(import.meta.url);
let done = false;

export function useEtcdMessageLimitWording(): void {
  if (done) return;
  done = true;
  const mod = require('@grpc/grpc-js/build/src/server-interceptors.js') as { BaseServerInterceptingCall?: { prototype: BaseCallPrototype } };
  const proto = mod.BaseServerInterceptingCall?.prototype;
  if (!proto) throw new Error('grpc-js internals changed: BaseServerInterceptingCall not found (see server/message-limit.ts)');
  const original = proto.sendStatus;
  proto.sendStatus = function (this: unknown, status: Status) {
    // The code first: this runs for every call's status.
    const m = status?.code === grpcStatus.RESOURCE_EXHAUSTED ? /^Received message larger than max \((\d+) vs (\d+)\)$/.exec(status.details ?? '') : null;
    original.call(this, m ? { ...status, details: `grpc: received message larger than max (${m[1]} vs. ${m[2]})` } : status);
  };
}

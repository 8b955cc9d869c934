/**
 * A minimal etcd KV client over @grpc/grpc-js, loaded from the project's proto/ files. Used to
 * preload keys and by the Node load generator's workers.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const protoDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'proto');

let ctor: grpc.ServiceClientConstructor | undefined;
function kvCtor(): grpc.ServiceClientConstructor {
  if (!ctor) {
    const def = protoLoader.loadSync(path.join(protoDir, 'rpc.proto'), {
      keepCase: true,
      longs: String,
      enums: Number,
      defaults: false,
      oneofs: true,
      includeDirs: [protoDir],
    });
    const pkg = grpc.loadPackageDefinition(def)['etcdserverpb'] as grpc.GrpcObject;
    ctor = pkg['KV'] as grpc.ServiceClientConstructor;
  }
  return ctor;
}

export interface RangeReq {
  key: Buffer;
  range_end?: Buffer;
  serializable?: boolean;
  limit?: number;
  count_only?: boolean;
  keys_only?: boolean;
}

export interface KvClient {
  put(key: Buffer, value: Buffer): Promise<void>;
  range(req: RangeReq): Promise<{ count: number; kvs: number }>;
  /** One Txn without compares whose success branch puts every pair. */
  txnPut(kvs: Array<[Buffer, Buffer]>): Promise<void>;
  close(): void;
}

/**
 * One client channel. `channelId` makes grpc-js open a separate TCP connection instead of
 * sharing one subchannel between clients of the same target in this process.
 */
export function kvClient(endpoint: string, channelId = 0): KvClient {
  const C = kvCtor();
  const c = new C(endpoint, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.bench_channel_id': channelId,
    'grpc.use_local_subchannel_pool': 1,
  }) as grpc.Client & Record<string, (req: unknown, opts: grpc.CallOptions, cb: grpc.requestCallback<any>) => void>;
  const deadline = () => ({ deadline: Date.now() + 30_000 });
  return {
    put: (key, value) =>
      new Promise((resolve, reject) =>
        c['Put']({ key, value }, deadline(), (err) => (err ? reject(err) : resolve())),
      ),
    range: (req) =>
      new Promise((resolve, reject) =>
        c['Range'](req, deadline(), (err, res: { count?: string; kvs?: unknown[] }) =>
          err ? reject(err) : resolve({ count: Number(res?.count ?? 0), kvs: res?.kvs?.length ?? 0 }),
        ),
      ),
    txnPut: (kvs) =>
      new Promise((resolve, reject) =>
        c['Txn'](
          { compare: [], success: kvs.map(([key, value]) => ({ request_put: { key, value } })), failure: [] },
          deadline(),
          (err) => (err ? reject(err) : resolve()),
        ),
      ),
    close: () => c.close(),
  };
}

/** Smallest key greater than every key with this prefix (etcd's prefix range_end). */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i] = end[i]! + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

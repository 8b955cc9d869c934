/**
 * How deep the protobuf decoders (protobufjs behind proto-loader, and the generated codecs in
 * etcd/gen/) may nest messages. protobufjs's default, 100, is ~48 nested txns: a member would
 * apply a deeper txn and the proxy then fail to decode the answer. etcd itself has no limit; the
 * proxy refuses client requests nested deeper than server/wire-guard.ts's MAX_TXN_NESTING, well
 * inside this.
 */
export const PROTOBUF_DEPTH_LIMIT = 1100;

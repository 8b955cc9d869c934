/**
 * The differential script: sections of etcd requests run against the oracle and the proxy.
 *
 * Key layout. The proxy under test uses routingPrefixSegments = 2: a key is routed by its prefix
 * up to and including its 2nd '/', and a key with fewer than two '/' is routed by the whole key.
 * So
 *   - `k/a`, `r/a`, `p/3`, `d/b`, ... (one '/') are each hashed whole: they spread over the
 *     shards, and every range/prefix/delete over them crosses shards;
 *   - `/t/...` keys all have routing prefix `/t/` and live on one shard: every multi-key write
 *     transaction uses only `/t/...` keys (a writing txn must stay on one shard);
 *   - `/registry/...` (kube-apiserver style) keys share the prefix `/registry/`.
 * Read-only transactions may span shards and do so here on purpose.
 * Keys starting with 0xffffff are reserved by the proxy and are not used.
 */
import type { Ctx, Section, Step } from './diff-engine.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Msg = any;
type Lazy<T> = T | ((c: Ctx) => T);

const B = (s: string | Buffer): Buffer => (Buffer.isBuffer(s) ? s : Buffer.from(s, 'utf8'));
const ZERO = Buffer.from([0]);

export function prefixEnd(prefix: string): Buffer {
  const buf = Buffer.from(prefix, 'utf8');
  for (let i = buf.length - 1; i >= 0; i--) {
    if (buf[i]! < 0xff) {
      buf[i]!++;
      return buf.subarray(0, i + 1);
    }
  }
  return ZERO;
}

function resolve(x: Msg, c: Ctx): Msg {
  if (typeof x === 'function') return x(c);
  if (Array.isArray(x)) return x.map((e) => resolve(e, c));
  if (x && typeof x === 'object' && !Buffer.isBuffer(x)) {
    const out: Record<string, Msg> = {};
    for (const [k, v] of Object.entries(x)) out[k] = resolve(v, c);
    return out;
  }
  return x;
}

/** Field values may be functions of the side's context; they are resolved per side. */
const lazy = (req: Msg) => (c: Ctx) => resolve(req, c);

// --- request builders ---------------------------------------------------------------------------

export const SortOrder = { NONE: 0, ASCEND: 1, DESCEND: 2 } as const;
export const SortTarget = { KEY: 0, VERSION: 1, CREATE: 2, MOD: 3, VALUE: 4 } as const;
export const CmpResult = { EQUAL: 0, GREATER: 1, LESS: 2, NOT_EQUAL: 3 } as const;
export const CmpTarget = { VERSION: 0, CREATE: 1, MOD: 2, VALUE: 3, LEASE: 4 } as const;
type CmpTargetName = keyof typeof CmpTarget;
type CmpResultName = keyof typeof CmpResult;

const unionField: Record<CmpTargetName, string> = {
  VERSION: 'version',
  CREATE: 'create_revision',
  MOD: 'mod_revision',
  VALUE: 'value',
  LEASE: 'lease',
};

/** Revision as the string proto-loader accepts for int64. */
const rv = (name: string, delta = 0) => (c: Ctx) => String(c.rev(name) + BigInt(delta));

export const rangeReq = (key: string | Buffer, extra: Msg = {}) => ({ key: B(key), ...extra });
export const prefixReq = (prefix: string, extra: Msg = {}) => ({ key: B(prefix), range_end: prefixEnd(prefix), ...extra });
export const putReq = (key: string | Buffer, value: string | Buffer, extra: Msg = {}) => ({ key: B(key), value: B(value), ...extra });

export const opGet = (key: string | Buffer, extra: Msg = {}) => ({ request_range: rangeReq(key, extra) });
export const opGetPrefix = (prefix: string, extra: Msg = {}) => ({ request_range: prefixReq(prefix, extra) });
export const opPut = (key: string | Buffer, value: string | Buffer, extra: Msg = {}) => ({ request_put: putReq(key, value, extra) });
export const opDel = (key: string | Buffer, extra: Msg = {}) => ({ request_delete_range: { key: B(key), ...extra } });
export const opDelPrefix = (prefix: string, extra: Msg = {}) => ({ request_delete_range: prefixReq(prefix, extra) });
export const opTxn = (t: Msg) => ({ request_txn: t });

export function cmp(target: CmpTargetName, result: CmpResultName, key: string | Buffer, operand: Lazy<Msg>, extra: Msg = {}) {
  return {
    target: CmpTarget[target],
    result: CmpResult[result],
    key: B(key),
    [unionField[target]]: target === 'VALUE' && typeof operand === 'string' ? B(operand) : operand,
    ...extra,
  };
}

const kv = (name: string, method: string, req: Msg, more: Partial<Step> = {}): Step => ({
  name,
  service: 'KV',
  method,
  req: lazy(req),
  ...more,
});
export const put = (name: string, key: string | Buffer, value: string | Buffer, extra: Msg = {}, more?: Partial<Step>) =>
  kv(name, 'Put', putReq(key, value, extra), more);
export const get = (name: string, key: string | Buffer, extra: Msg = {}, more?: Partial<Step>) => kv(name, 'Range', rangeReq(key, extra), more);
export const getPrefix = (name: string, prefix: string, extra: Msg = {}, more?: Partial<Step>) =>
  kv(name, 'Range', prefixReq(prefix, extra), more);
export const range = (name: string, req: Msg, more?: Partial<Step>) => kv(name, 'Range', req, more);
export const del = (name: string, req: Msg, more?: Partial<Step>) => kv(name, 'DeleteRange', req, more);
export const txn = (name: string, t: { compare?: Msg[]; success?: Msg[]; failure?: Msg[] }, more?: Partial<Step>) =>
  kv(name, 'Txn', { compare: t.compare ?? [], success: t.success ?? [], failure: t.failure ?? [] }, more);
export const compact = (name: string, revision: Lazy<Msg>, physical = false, more?: Partial<Step>) =>
  kv(name, 'Compact', { revision, physical }, more);
// --- sections -----------------------------------------------------------------------------------

// Lease IDs that are never granted: the Lease service is not part of this script (the proxy
// answers it with UNIMPLEMENTED for now), so every key here has lease 0 and a put naming a lease
// must fail with NOT_FOUND "etcdserver: requested lease not found" on both sides.
const LEASE_UNGRANTED = '28673'; // 0x7001
const LEASE_CMP = '28674'; // 0x7002

function basics(): Section {
  const binKey = Buffer.from([0x01, 0x00, 0xfe, 0x6b]);
  const binVal = Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 37) % 256));
  return {
    name: 'put/get basics',
    steps: [
      get('get-missing', 'k/a'),
      put('put-a1', 'k/a', 'v1'),
      get('get-a1', 'k/a'),
      put('put-a2-prevkv', 'k/a', 'v2', { prev_kv: true }),
      put('put-b-prevkv-new', 'k/b', 'b1', { prev_kv: true }),
      put('put-a-ignore-value', 'k/a', '', { ignore_value: true, prev_kv: true }),
      get('get-a3', 'k/a'),
      put('put-ignore-value-missing', 'k/zz', '', { ignore_value: true }),
      put('put-ignore-value-with-value', 'k/a', 'x', { ignore_value: true }),
      put('put-ignore-lease-with-lease', 'k/a', 'x', { ignore_lease: true, lease: '5' }),
      put('put-ignore-lease', 'k/a', 'v4', { ignore_lease: true }),
      put('put-ignore-both', 'k/a', '', { ignore_lease: true, ignore_value: true }),
      get('get-a5', 'k/a'),
      put('put-unknown-lease', 'k/c', 'c1', { lease: '999999' }),
      get('get-c-after-failed-put', 'k/c'),
      put('put-empty-key', '', 'x'),
      get('get-empty-key', ''),
      range('range-empty-key-with-end', { key: B(''), range_end: B('k/b') }),
      del('delete-empty-key', { key: B('') }),
      put('put-empty-value', 'k/e', ''),
      get('get-empty-value', 'k/e'),
      put('put-binary', binKey, binVal),
      get('get-binary', binKey),
      put('put-unicode', 'k/ü', 'wert-ä'),
      get('get-unicode', 'k/ü'),
      put('put-b2-same-value', 'k/b', 'b1'),
      get('get-b2', 'k/b'),
      get('get-a-serializable', 'k/a', { serializable: true }),
      get('get-b-keys-only', 'k/b', { keys_only: true }),
      get('get-b-count-only', 'k/b', { count_only: true }),
      get('get-a-at-put-a1', 'k/a', { revision: rv('put-a1') }),
      get('get-a-at-put-a2', 'k/a', { revision: rv('put-a2-prevkv') }),
      get('get-b-before-create', 'k/b', { revision: rv('put-a2-prevkv') }),
    ],
  };
}

/**
 * Lease fields without the Lease service: puts naming a lease that was never granted,
 * ignore_lease on keys with lease 0 (plain and inside a txn), LEASE compares against lease 0.
 */
function leaseFields(): Section {
  return {
    name: 'lease fields (no granted lease)',
    steps: [
      put('put-l1', 'k/l1', 'x'),
      put('put-l1-ungranted-lease', 'k/l1', 'y', { lease: LEASE_UNGRANTED, prev_kv: true }),
      get('get-l1-after-failed-put', 'k/l1'),
      put('put-l1-ignore-lease', 'k/l1', 'y', { ignore_lease: true, prev_kv: true }),
      get('get-l1-ignore-lease', 'k/l1'),
      put('put-l1-ignore-lease-with-lease', 'k/l1', 'z', { ignore_lease: true, lease: LEASE_UNGRANTED }),
      put('put-ignore-lease-missing-key', 'k/l9', 'x', { ignore_lease: true }),
      get('get-l9-after-failed-put', 'k/l9'),
      put('put-l2', 'k/l2', 'x'),
      txn('txn-lease-compare', { compare: [cmp('LEASE', 'EQUAL', 'k/l1', '0')], success: [opGet('k/l1')] }),
      ...(['EQUAL', 'GREATER', 'LESS', 'NOT_EQUAL'] as const).flatMap((result) =>
        (
          [
            ['0', '0'],
            ['5', '5'],
            ['lease', LEASE_UNGRANTED],
            ['-1', '-1'],
          ] as const
        ).map(([on, operand]) =>
          txn(`lease-cmp-${result}-${on}`, { compare: [cmp('LEASE', result, 'k/l2', operand)], success: [opGet('k/l2', { keys_only: true })], failure: [] }),
        ),
      ),
      put('put-l4', '/t/l4', 'x'),
      txn('txn-guarded-by-lease-0', {
        compare: [cmp('LEASE', 'EQUAL', '/t/l4', '0')],
        success: [opPut('/t/l4', 'y', { ignore_lease: true, prev_kv: true }), opPut('/t/l5', 'z')],
        failure: [opGet('/t/l4')],
      }),
      txn('txn-guarded-by-ungranted-lease', {
        compare: [cmp('LEASE', 'EQUAL', '/t/l4', LEASE_UNGRANTED)],
        success: [opPut('/t/l4', 'never')],
        failure: [opGet('/t/l4')],
      }),
      txn('txn-ungranted-lease-after-put', { success: [opPut('/t/l4', 'w', { prev_kv: true }), opPut('/t/l5', 'w', { lease: LEASE_UNGRANTED })] }),
      txn('txn-ignore-lease-missing-key', { success: [opPut('/t/l6', 'x', { ignore_lease: true })] }),
      getPrefix('get-l4-l5', '/t/l'),
    ],
  };
}

/** r/a..r/e with distinct key, create, mod, version and value orders (no ties in sorts). */
function ranges(): Section {
  const steps: Step[] = [
    // create order c, a, e, b, d
    put('c1', 'r/c', 'b'),
    put('c2', 'r/a', 'm'),
    put('c3', 'r/e', 'f'),
    put('c4', 'r/b', 'z'),
    put('c5', 'r/d', 'q'),
    // outside the r/ prefix, at its boundaries
    put('o1', 'r', 'outside'),
    put('o2', 'r0', 'outside'),
    put('o3', 'q/z', 'outside'),
    put('o4', 's/a', 'outside'),
    put('x-create', 'r/x', 'deleted-later'),
  ];
  // updates: versions c1 e2 b3 a4 d5; last-mod order c < a < b < d < e
  const seq = ['a', 'd', 'b', 'a', 'd', 'd', 'a', 'b', 'd', 'e'];
  const values: Record<string, string> = { a: 'm', b: 'z', c: 'b', d: 'q', e: 'f' };
  seq.forEach((k, i) => {
    steps.push(put(`u${i + 1}-${k}`, `r/${k}`, values[k]!));
    if (i === 4) steps.push(del('x-delete', { key: B('r/x') }));
  });
  steps.push(
    get('get-r-a', 'r/a'),
    getPrefix('prefix', 'r/'),
    range('range-b-d', { key: B('r/b'), range_end: B('r/d') }),
    range('range-end-before-key', { key: B('r/d'), range_end: B('r/b') }),
    range('from-key-r-c', { key: B('r/c'), range_end: ZERO }),
    range('all-keys', { key: ZERO, range_end: ZERO }),
    range('all-keys-count-only', { key: ZERO, range_end: ZERO, count_only: true }),
    range('all-keys-keys-only-limit3', { key: ZERO, range_end: ZERO, keys_only: true, limit: '3' }),
    range('from-key-limit2', { key: B('r/'), range_end: ZERO, limit: '2' }),
    getPrefix('prefix-limit1', 'r/', { limit: '1' }),
    getPrefix('prefix-limit2', 'r/', { limit: '2' }),
    getPrefix('prefix-limit5', 'r/', { limit: '5' }),
    getPrefix('prefix-limit6', 'r/', { limit: '6' }),
    getPrefix('prefix-keys-only', 'r/', { keys_only: true }),
    getPrefix('prefix-count-only', 'r/', { count_only: true }),
    getPrefix('prefix-count-only-limit2', 'r/', { count_only: true, limit: '2' }),
    getPrefix('prefix-keys-only-limit2', 'r/', { keys_only: true, limit: '2' }),
  );
  for (const [tn, t] of Object.entries(SortTarget)) {
    for (const [on, o] of Object.entries(SortOrder)) {
      steps.push(getPrefix(`sort-${tn}-${on}`, 'r/', { sort_target: t, sort_order: o }));
      steps.push(getPrefix(`sort-${tn}-${on}-limit2`, 'r/', { sort_target: t, sort_order: o, limit: '2' }));
    }
  }
  steps.push(
    getPrefix('sort-MOD-DESCEND-keys-only', 'r/', { sort_target: SortTarget.MOD, sort_order: SortOrder.DESCEND, keys_only: true }),
    getPrefix('min-mod', 'r/', { min_mod_revision: rv('u8-b') }),
    getPrefix('max-mod', 'r/', { max_mod_revision: rv('u7-a') }),
    getPrefix('min-max-mod', 'r/', { min_mod_revision: rv('u7-a'), max_mod_revision: rv('u9-d') }),
    getPrefix('min-create', 'r/', { min_create_revision: rv('c3') }),
    getPrefix('max-create', 'r/', { max_create_revision: rv('c3') }),
    getPrefix('min-max-create', 'r/', { min_create_revision: rv('c2'), max_create_revision: rv('c4') }),
    getPrefix('min-mod-limit1', 'r/', { min_mod_revision: rv('u8-b'), limit: '1' }),
    getPrefix('min-mod-count-only', 'r/', { min_mod_revision: rv('u8-b'), count_only: true }),
    getPrefix('min-mod-sorted', 'r/', { min_mod_revision: rv('u7-a'), sort_target: SortTarget.VALUE, sort_order: SortOrder.DESCEND }),
    getPrefix('hist-at-c3', 'r/', { revision: rv('c3') }),
    getPrefix('hist-at-u5', 'r/', { revision: rv('u5-d') }),
    getPrefix('hist-at-u5-limit2', 'r/', { revision: rv('u5-d'), limit: '2' }),
    getPrefix('hist-at-u5-count-only', 'r/', { revision: rv('u5-d'), count_only: true }),
    getPrefix('hist-at-u5-sorted', 'r/', { revision: rv('u5-d'), sort_target: SortTarget.MOD, sort_order: SortOrder.DESCEND }),
    get('hist-x-before-create', 'r/x', { revision: rv('c5') }),
    get('hist-x-alive', 'r/x', { revision: rv('u4-a') }),
    get('hist-x-at-delete', 'r/x', { revision: rv('x-delete') }),
    get('hist-x-now', 'r/x'),
    range('hist-all-keys-at-o2', { key: ZERO, range_end: ZERO, revision: rv('o2') }),
    range('hist-from-key-at-u1', { key: B('r/c'), range_end: ZERO, revision: rv('u1-a') }),
    getPrefix('hist-at-current', 'r/', { revision: (c: Ctx) => String(c.rev('u10-e')) }),
    getPrefix('future-revision', 'r/', { revision: (c: Ctx) => String(c.maxRev + 1000n) }),
    get('future-revision-single', 'r/a', { revision: (c: Ctx) => String(c.maxRev + 1000n) }),
    getPrefix('prefix-linearizable-again', 'r/'),
    getPrefix('prefix-serializable', 'r/', { serializable: true }),
  );
  return { name: 'ranges', steps };
}

/** kube-apiserver style pagination at a pinned revision with a moving start key. */
function pagination(): Section {
  const steps: Step[] = [];
  for (let i = 0; i < 10; i++) steps.push(put(`p${i}`, `p/${i}`, `v${i}`));
  steps.push(put('p9-update', 'p/9', 'v9b'));
  const next = (page: string) => (c: Ctx) => {
    const kvs = c.res(page).kvs as Msg[];
    return Buffer.concat([kvs[kvs.length - 1].key, ZERO]);
  };
  steps.push(
    getPrefix('page1', 'p/', { limit: '4' }),
    put('p5-update-after-page1', 'p/5', 'v5b'),
    put('p1-update-after-page1', 'p/1', 'v1b'),
    range('page2', { key: next('page1'), range_end: prefixEnd('p/'), limit: '4', revision: rv('page1') }),
    range('page3', { key: next('page2'), range_end: prefixEnd('p/'), limit: '4', revision: rv('page1') }),
    getPrefix('page1-again-pinned', 'p/', { limit: '4', revision: rv('page1') }),
    getPrefix('fresh-list', 'p/', { limit: '500' }),
  );
  return { name: 'pagination', steps };
}

function deletes(): Section {
  return {
    name: 'delete',
    steps: [
      put('d-a', 'd/a', '1'),
      put('d-b', 'd/b', '2'),
      put('d-c', 'd/c', '3'),
      put('d-d', 'd/d', '4'),
      put('d-e', 'd/e', '5'),
      put('d-outside', 'dd', 'outside'),
      del('del-single-prevkv', { key: B('d/a'), prev_kv: true }),
      del('del-missing', { key: B('d/zz') }),
      put('put-after-missing-delete', 'd/f', '6'),
      del('del-missing-prevkv', { key: B('d/a'), prev_kv: true }),
      del('del-missing-range', { key: B('d/x'), range_end: B('d/z') }),
      del('del-range-b-d', { key: B('d/b'), range_end: B('d/d'), prev_kv: true }),
      getPrefix('after-range-delete', 'd/'),
      del('del-prefix', { ...prefixReq('d/'), prev_kv: true }),
      getPrefix('after-prefix-delete', 'd/'),
      get('outside-survives', 'dd'),
      getPrefix('hist-before-deletes', 'd/', { revision: rv('d-outside') }),
      getPrefix('hist-after-single-delete', 'd/', { revision: rv('del-single-prevkv') }),
      put('recreate-a', 'd/a', 'again'),
      get('get-recreated', 'd/a'),
      del('del-no-prevkv', { key: B('d/a') }),
      put('recreate-a-2', 'd/a', 'third'),
      del('del-prefix-count', prefixReq('d/')),
      getPrefix('hist-recreated', 'd/', { revision: rv('recreate-a') }),
    ],
  };
}

/** Every compare target × result × operand on an existing and a missing key. */
function compareMatrix(): Section {
  const X = '/t/cmp/x';
  const M = '/t/cmp/missing';
  // No lease here (LEASE compares against lease 0); see also leaseFields().
  const steps: Step[] = [
    put('x1', X, 'vx'),
    put('filler', '/t/cmp/filler', 'f'),
    put('x2', X, 'vx'),
  ];
  const operands: Record<CmpTargetName, Array<[string, Lazy<Msg>]>> = {
    VERSION: [['0', '0'], ['1', '1'], ['2', '2'], ['3', '3']],
    CREATE: [['0', '0'], ['create-1', rv('x1', -1)], ['create', rv('x1')], ['create+1', rv('x1', 1)]],
    MOD: [['0', '0'], ['mod-1', rv('x2', -1)], ['mod', rv('x2')], ['mod+1', rv('x2', 1)]],
    VALUE: [['empty', ''], ['vw', 'vw'], ['vx', 'vx'], ['vy', 'vy']],
    LEASE: [['0', '0'], ['1', '1'], ['lease', LEASE_CMP]],
  };
  for (const target of Object.keys(CmpTarget) as CmpTargetName[]) {
    for (const result of Object.keys(CmpResult) as CmpResultName[]) {
      for (const [on, operand] of operands[target]) {
        for (const [kn, key] of [['x', X], ['missing', M]] as const) {
          steps.push(
            txn(`${target}-${result}-${on}-${kn}`, {
              compare: [cmp(target, result, key, operand)],
              success: [opGet(X, { keys_only: true })],
              failure: [opGet('/t/cmp/filler', { keys_only: true })],
            }),
          );
        }
      }
    }
  }
  // multiple compares (all must hold)
  steps.push(
    txn('and-true', { compare: [cmp('VERSION', 'EQUAL', X, '2'), cmp('VALUE', 'EQUAL', X, 'vx'), cmp('MOD', 'EQUAL', X, rv('x2'))], success: [opGet(X)] }),
    txn('and-false', { compare: [cmp('VERSION', 'EQUAL', X, '2'), cmp('VALUE', 'EQUAL', X, 'no')], success: [opGet(X)], failure: [opGet(M)] }),
    txn('missing-and-existing', { compare: [cmp('VERSION', 'EQUAL', M, '0'), cmp('CREATE', 'GREATER', X, '0')], success: [opGet(X)] }),
  );
  // compares over a key range
  const RC = '/t/rc/';
  steps.push(
    put('rc-a', `${RC}a`, 'same'),
    put('rc-b1', `${RC}b`, 'same'),
    put('rc-b2', `${RC}b`, 'same'),
    put('rc-c', `${RC}c`, 'diff'),
    txn('range-version-gt0', { compare: [cmp('VERSION', 'GREATER', RC, '0', { range_end: prefixEnd(RC) })], success: [opGetPrefix(RC)] }),
    txn('range-version-eq1', { compare: [cmp('VERSION', 'EQUAL', RC, '1', { range_end: prefixEnd(RC) })], failure: [opGetPrefix(RC, { count_only: true })] }),
    txn('range-version-lt3', { compare: [cmp('VERSION', 'LESS', RC, '3', { range_end: prefixEnd(RC) })] }),
    txn('range-mod-gt-rc-a', { compare: [cmp('MOD', 'GREATER', RC, rv('rc-a'), { range_end: prefixEnd(RC) })] }),
    txn('range-mod-gt-rc-a-sub', { compare: [cmp('MOD', 'GREATER', `${RC}b`, rv('rc-a'), { range_end: prefixEnd(RC) })] }),
    txn('range-create-ne0', { compare: [cmp('CREATE', 'NOT_EQUAL', RC, '0', { range_end: prefixEnd(RC) })] }),
    txn('range-value-eq-same', { compare: [cmp('VALUE', 'EQUAL', RC, 'same', { range_end: prefixEnd(RC) })] }),
    txn('range-value-eq-same-ab', { compare: [cmp('VALUE', 'EQUAL', RC, 'same', { range_end: B(`${RC}c`) })] }),
    txn('range-lease-eq0', { compare: [cmp('LEASE', 'EQUAL', RC, '0', { range_end: prefixEnd(RC) })] }),
    txn('range-empty-version-eq5', { compare: [cmp('VERSION', 'EQUAL', `${RC}x`, '5', { range_end: B(`${RC}z`) })] }),
    txn('range-empty-version-eq0', { compare: [cmp('VERSION', 'EQUAL', `${RC}x`, '0', { range_end: B(`${RC}z`) })] }),
    txn('range-empty-value', { compare: [cmp('VALUE', 'EQUAL', `${RC}x`, '', { range_end: B(`${RC}z`) })] }),
    // Read-only txn whose compare covers every key from /t/rc/ on (all shards): allowed in the proxy.
    txn('range-from-key-readonly', { compare: [cmp('VERSION', 'GREATER', RC, '0', { range_end: ZERO })], success: [opGetPrefix(RC, { keys_only: true })] }),
    // A write guarded by a range compare.
    txn('range-guarded-write', {
      compare: [cmp('VALUE', 'EQUAL', RC, 'same', { range_end: B(`${RC}c`) })],
      success: [opPut(`${RC}d`, 'new')],
      failure: [opGetPrefix(RC)],
    }),
    getPrefix('rc-after', RC),
  );
  return { name: 'txn compare matrix', steps };
}

function txnOps(): Section {
  const O = '/t/o/';
  const big = Array.from({ length: 128 }, (_, i) => opPut(`/t/big/${String(i).padStart(3, '0')}`, `v${i}`));
  const ranges129 = Array.from({ length: 129 }, () => opGet(`${O}a`));
  const compares129 = Array.from({ length: 129 }, () => cmp('VERSION', 'GREATER', `${O}a`, '-1'));
  return {
    name: 'txn ops',
    steps: [
      txn('empty-txn', {}),
      txn('put-then-get', { success: [opPut(`${O}a`, '1'), opGet(`${O}a`)] }),
      txn('put-prevkv', { success: [opPut(`${O}a`, '2', { prev_kv: true })] }),
      txn('get-then-put-then-get', { success: [opGet(`${O}a`), opPut(`${O}a`, '3'), opGet(`${O}a`)] }),
      txn('multi-put-delete', { success: [opPut(`${O}b`, 'b'), opPut(`${O}c`, 'c'), opDel(`${O}a`, { prev_kv: true })] }),
      getPrefix('after-multi', O),
      txn('failure-branch', {
        compare: [cmp('VALUE', 'EQUAL', `${O}b`, 'nope')],
        success: [opPut(`${O}s`, 'x')],
        failure: [opPut(`${O}d`, 'd'), opGetPrefix(O)],
      }),
      txn('delete-prefix-in-txn', { success: [opDelPrefix(O, { prev_kv: true }), opGetPrefix(O, { count_only: true })] }),
      txn('delete-missing-in-txn', { success: [opDel(`${O}nothing`, { prev_kv: true })] }),
      txn('put-missing-ignore-value', { success: [opPut(`${O}nothing`, '', { ignore_value: true })] }),
      txn('nested-create', {
        success: [
          opTxn({ compare: [cmp('MOD', 'EQUAL', `${O}n`, '0')], success: [opPut(`${O}n`, '1')], failure: [opGet(`${O}n`)] }),
          opGet(`${O}n`),
        ],
      }),
      txn('nested-create-again', {
        success: [
          opTxn({ compare: [cmp('MOD', 'EQUAL', `${O}n`, '0')], success: [opPut(`${O}n`, '1')], failure: [opGet(`${O}n`)] }),
          opGet(`${O}n`),
        ],
      }),
      txn('nested-two-levels', {
        compare: [cmp('VERSION', 'EQUAL', `${O}n`, '1')],
        success: [
          opTxn({
            compare: [cmp('VALUE', 'EQUAL', `${O}n`, '1')],
            success: [opTxn({ compare: [cmp('VERSION', 'GREATER', `${O}n2`, '0')], success: [opGet(`${O}n2`)], failure: [opPut(`${O}n2`, 'deep')] })],
          }),
          opPut(`${O}n`, '2', { prev_kv: true }),
        ],
      }),
      getPrefix('after-nested', O),
      txn('nested-in-failure', {
        compare: [cmp('VERSION', 'EQUAL', `${O}n`, '99')],
        failure: [opTxn({ success: [opDel(`${O}n2`, { prev_kv: true })] }), opGet(`${O}n`)],
      }),
      txn('delete-twice-same-key', { success: [opDel(`${O}n`), opDel(`${O}n`)] }),
      put('n-recreate', `${O}n`, 'again'),
      txn('dup-put-put', { success: [opPut(`${O}x`, '1'), opPut(`${O}x`, '2')] }),
      txn('dup-put-delete', { success: [opPut(`${O}x`, '1'), opDel(`${O}x`)] }),
      txn('dup-delete-put', { success: [opDel(`${O}x`), opPut(`${O}x`, '1')] }),
      txn('dup-put-delete-range', { success: [opPut(`${O}x`, '1'), opDelPrefix(O)] }),
      txn('dup-nested', { success: [opPut(`${O}x`, '1'), opTxn({ success: [opPut(`${O}x`, '2')] })] }),
      txn('dup-nested-failure-branch', { success: [opPut(`${O}x`, '1'), opTxn({ failure: [opPut(`${O}x`, '2')] })] }),
      txn('dup-in-failure', { failure: [opPut(`${O}x`, '1'), opPut(`${O}x`, '2')] }),
      txn('not-dup-success-vs-failure', { success: [opPut(`${O}x`, 'S')], failure: [opPut(`${O}x`, 'F')] }),
      txn('not-dup-put-and-get', { success: [opPut(`${O}x`, 'S2'), opGet(`${O}x`)] }),
      txn('not-dup-nested-branches', {
        success: [opTxn({ compare: [cmp('VERSION', 'GREATER', `${O}x`, '0')], success: [opPut(`${O}y`, 'a')], failure: [opPut(`${O}y`, 'b')] })],
      }),
      getPrefix('after-dups', O),
      txn('too-many-ops-success', { success: ranges129 }),
      txn('too-many-ops-failure', { compare: [cmp('VERSION', 'LESS', `${O}a`, '0')], failure: ranges129 }),
      txn('too-many-compares', { compare: compares129 }),
      txn('128-puts', { success: big }),
      getPrefix('128-puts-count', '/t/big/', { count_only: true }),
      getPrefix('128-puts-last2', '/t/big/', { sort_order: SortOrder.DESCEND, limit: '2' }),
      txn('128-ranges', { success: Array.from({ length: 128 }, () => opGet(`${O}x`, { keys_only: true })) }),
      txn('empty-key-in-txn', { success: [opPut('', 'x')] }),
      txn('empty-key-range-in-txn', { success: [opGet('')] }),
      txn('unknown-lease-in-txn', { success: [opPut(`${O}z`, 'x', { lease: '424242' })] }),
      txn('unknown-lease-in-unexecuted-branch', {
        compare: [cmp('VERSION', 'GREATER', `${O}x`, '0')],
        success: [opGet(`${O}x`)],
        failure: [opPut(`${O}z`, 'x', { lease: '424242' })],
      }),
      txn('future-rev-in-txn', { success: [opGet(`${O}x`, { revision: (c: Ctx) => String(c.maxRev + 1000n) })] }),
      txn('historical-range-in-txn', { success: [opGet(`${O}a`, { revision: rv('put-then-get') })] }),
      txn('sorted-limited-range-in-txn', { success: [opGetPrefix('/t/big/', { sort_target: SortTarget.VALUE, sort_order: SortOrder.DESCEND, limit: '3' })] }),
      // Read-only transactions may span shards (k/..., r/... keys are spread over all shards).
      txn('readonly-cross-shard', {
        compare: [cmp('VERSION', 'GREATER', 'k/a', '0'), cmp('VALUE', 'EQUAL', 'k/b', 'b1')],
        success: [opGetPrefix('r/'), opGet('k/a'), opGetPrefix('p/', { count_only: true })],
        failure: [opGet('k/b')],
      }),
      txn('readonly-cross-shard-failure', {
        compare: [cmp('VERSION', 'GREATER', 'k/a', '100')],
        success: [opGet('k/a')],
        failure: [opGetPrefix('r/', { keys_only: true }), opGet('k/b')],
      }),
      txn('readonly-all-keys-count', { success: [{ request_range: { key: ZERO, range_end: ZERO, count_only: true } }] }),
    ],
  };
}

function kube(): Section {
  const P = '/registry/pods/default/p1';
  const E = '/registry/events/default/e1';
  const CK = 'compact_rev_key';
  return {
    name: 'kube-apiserver shapes',
    steps: [
      txn('create', { compare: [cmp('MOD', 'EQUAL', P, '0')], success: [opPut(P, 'pod-v1')] }),
      txn('create-exists', { compare: [cmp('MOD', 'EQUAL', P, '0')], success: [opPut(P, 'pod-v1')] }),
      txn('update', { compare: [cmp('MOD', 'EQUAL', P, rv('create'))], success: [opPut(P, 'pod-v2')], failure: [opGet(P)] }),
      txn('update-conflict', { compare: [cmp('MOD', 'EQUAL', P, rv('create'))], success: [opPut(P, 'pod-v3')], failure: [opGet(P)] }),
      txn('delete-conflict', { compare: [cmp('MOD', 'EQUAL', P, rv('create'))], success: [opDel(P)], failure: [opGet(P)] }),
      txn('delete', { compare: [cmp('MOD', 'EQUAL', P, rv('update'))], success: [opDel(P, { prev_kv: true })], failure: [opGet(P)] }),
      txn('update-after-delete', { compare: [cmp('MOD', 'EQUAL', P, rv('update'))], success: [opPut(P, 'pod-v4')], failure: [opGet(P)] }),
      txn('recreate', { compare: [cmp('MOD', 'EQUAL', P, '0')], success: [opPut(P, 'pod-v5')] }),
      // kube-apiserver attaches a lease to events; without the Lease service the event is plain.
      txn('create-event', { compare: [cmp('MOD', 'EQUAL', E, '0')], success: [opPut(E, 'event')] }),
      get('get-event', E),
      getPrefix('list-pods', '/registry/pods/', { limit: '500' }),
      getPrefix('count-registry', '/registry/', { count_only: true }),
      getPrefix('list-registry-keys', '/registry/', { keys_only: true }),
      txn('compact-first', { compare: [cmp('VERSION', 'EQUAL', CK, '0')], success: [opPut(CK, 'rev-a')], failure: [opGet(CK)] }),
      txn('compact-second', { compare: [cmp('VERSION', 'EQUAL', CK, '1')], success: [opPut(CK, 'rev-b')], failure: [opGet(CK)] }),
      txn('compact-stale', { compare: [cmp('VERSION', 'EQUAL', CK, '1')], success: [opPut(CK, 'rev-c')], failure: [opGet(CK)] }),
      get('get-compact-key', CK),
    ],
  };
}

function limits(): Section {
  const LIMIT = 1572864;
  return {
    name: 'request limits',
    steps: [
      put('put-1.6MiB', 'big/a', Buffer.alloc(Math.floor(1.6 * 1024 * 1024), 0x61)),
      put('put-2MiB', 'big/a', Buffer.alloc(2 * 1024 * 1024, 0x62)),
      put('put-just-under-limit', 'big/a', Buffer.alloc(LIMIT - 100, 0x63)),
      get('get-just-under-limit', 'big/a', { keys_only: true }),
      txn('txn-3x500KiB', {
        success: [0, 1, 2].map((i) => opPut(`/t/bigtxn/${i}`, Buffer.alloc(500 * 1024, 0x64 + i))),
      }),
      getPrefix('get-bigtxn', '/t/bigtxn/', { keys_only: true }),
      txn('txn-too-large', { success: [0, 1, 2, 3].map((i) => opPut(`/t/bigtxn/${i}`, Buffer.alloc(500 * 1024, 0x70))) }),
      del('delete-big', { key: B('big/a') }),
      del('delete-bigtxn', prefixReq('/t/bigtxn/')),
    ],
  };
}

function compaction(): Section {
  return {
    name: 'compaction',
    steps: [
      put('before-compact', 'k/cmp', '1'),
      put('compact-point', 'k/cmp', '2'),
      put('after-compact-point', 'k/cmp', '3'),
      compact('compact', rv('compact-point')),
      get('read-below-compaction', 'k/cmp', { revision: rv('before-compact') }),
      get('read-at-compaction', 'k/cmp', { revision: rv('compact-point') }),
      get('read-after-compaction-rev', 'k/cmp', { revision: rv('after-compact-point') }),
      getPrefix('range-below-compaction', 'r/', { revision: rv('c3', 0) }),
      compact('compact-same-again', rv('compact-point')),
      compact('compact-lower', rv('before-compact')),
      compact('compact-future', (c: Ctx) => String(c.maxRev + 1000n)),
      txn('txn-range-compacted', { success: [opGet('k/cmp', { revision: rv('before-compact') })] }),
      put('compact-point-2', 'k/cmp', '4'),
      compact('compact-physical', rv('compact-point-2'), true),
      get('read-below-physical', 'k/cmp', { revision: rv('after-compact-point') }),
      get('read-at-physical', 'k/cmp', { revision: rv('compact-point-2') }),
      // kube-apiserver's compaction: version guard on compact_rev_key, then Compact.
      txn('kube-compact-guard', {
        compare: [cmp('VERSION', 'EQUAL', 'compact_rev_key', '2')],
        success: [opPut('compact_rev_key', 'rev-d')],
        failure: [opGet('compact_rev_key')],
      }),
      compact('kube-compact', rv('kube-compact-guard')),
      put('write-after-compact', 'k/cmp', '5'),
      get('read-after-compact', 'k/cmp'),
      getPrefix('prefix-after-compact', 'r/'),
    ],
  };
}

function finale(): Section {
  return {
    name: 'delete everything',
    steps: [
      range('count-all', { key: ZERO, range_end: ZERO, count_only: true }),
      del('delete-all', { key: ZERO, range_end: ZERO, prev_kv: true }),
      range('all-after-delete', { key: ZERO, range_end: ZERO }),
      put('put-after-delete-all', 'k/a', 'alive'),
      get('get-after-delete-all', 'k/a'),
      txn('txn-after-delete-all', { compare: [cmp('VERSION', 'EQUAL', '/t/z', '0')], success: [opPut('/t/z', 'z'), opPut('/t/y', 'y')] }),
      range('all-final', { key: ZERO, range_end: ZERO }),
    ],
  };
}

export function differentialScript(): Section[] {
  return [basics(), leaseFields(), ranges(), pagination(), deletes(), compareMatrix(), txnOps(), kube(), limits(), compaction(), finale()];
}

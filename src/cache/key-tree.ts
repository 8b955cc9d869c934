/**
 * One shard's keys at one meta revision: a B-tree from the key (latin1, so string order is
 * byte order) to its encoded KeyValue (wire.ts). Clones are copy-on-write: a snapshot costs
 * nothing until the live tree changes, then only the changed nodes are copied.
 */
import btree from 'sorted-btree';

/** sorted-btree is CommonJS: under Node's ESM its class is the default export's `default`. */
const BTree = btree.default;

export type KeyTree = InstanceType<typeof BTree<string, string>>;

/** Greater than every latin1 string: the upper bound of an unbounded range. */
export const TOP = '\u0100';

const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export function emptyTree(): KeyTree {
  return new BTree<string, string>(undefined, compare);
}

export class ShardStore {
  private tree: KeyTree = emptyTree();
  /** Key and encoded bytes held (for the cache_bytes gauge). */
  private held = 0;

  get keys(): number {
    return this.tree.size;
  }

  get bytes(): number {
    return this.held;
  }

  /** The live tree; readers must not keep it across an await (see snapshot()). */
  get live(): KeyTree {
    return this.tree;
  }

  put(key: string, encoded: string): void {
    const old = this.tree.get(key);
    this.held += old === undefined ? key.length + encoded.length : encoded.length - old.length;
    this.tree.set(key, encoded, true);
  }

  delete(key: string): void {
    const old = this.tree.get(key);
    if (old === undefined) return;
    this.held -= key.length + old.length;
    this.tree.delete(key);
  }

  /** A frozen copy of the current state. */
  snapshot(): KeyTree {
    return this.tree.clone();
  }

  replace(tree: KeyTree, bytes: number): void {
    this.tree = tree;
    this.held = bytes;
  }
}

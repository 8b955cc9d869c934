/**
 * Intervals [start, end) over keys (latin1 strings compare in byte order), end null = no upper
 * bound, found by stabbing: every interval holding a key in O(log n + matches). A treap ordered
 * by start, each node augmented with the largest end in its subtree, so a search skips every
 * subtree whose intervals all end at or before the key.
 */
interface Node<V> {
  start: string;
  end: string | null;
  /** Tie-break among equal starts, so every interval has its own node. */
  seq: number;
  prio: number;
  value: V;
  maxEnd: string | null;
  left: Node<V> | null;
  right: Node<V> | null;
}

/** a > b, with null as +infinity. */
function endAfter(a: string | null, b: string | null): boolean {
  if (a === null) return b !== null;
  return b !== null && a > b;
}

function order<V>(a: Node<V>, start: string, seq: number): number {
  if (a.start !== start) return a.start < start ? -1 : 1;
  return a.seq - seq;
}

export class IntervalTreap<V> {
  private root: Node<V> | null = null;
  private nextSeq = 0;
  private count = 0;
  /** A cheap deterministic priority source (xorshift): balance does not need crypto quality. */
  private seed = 0x9e3779b9;

  get size(): number {
    return this.count;
  }

  /** Adds the interval; returns a handle for remove(). */
  insert(start: string, end: string | null, value: V): IntervalHandle {
    const node: Node<V> = { start, end, seq: this.nextSeq++, prio: this.rand(), value, maxEnd: end, left: null, right: null };
    this.root = this.insertAt(this.root, node);
    this.count++;
    return { start, seq: node.seq };
  }

  remove(h: IntervalHandle): boolean {
    const before = this.count;
    this.root = this.removeAt(this.root, h.start, h.seq);
    return this.count < before;
  }

  /** Calls `f` for every interval with start <= key < end. */
  stab(key: string, f: (v: V) => void): void {
    this.stabAt(this.root, key, f);
  }

  private stabAt(n: Node<V> | null, key: string, f: (v: V) => void): void {
    while (n) {
      // Every interval below ends at or before the key: none holds it.
      if (n.maxEnd !== null && n.maxEnd <= key) return;
      this.stabAt(n.left, key, f);
      if (n.start > key) return; // this node and its right subtree start after the key
      if (n.end === null || key < n.end) f(n.value);
      n = n.right;
    }
  }

  private rand(): number {
    let x = this.seed;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.seed = x >>> 0;
    return this.seed;
  }

  private fix(n: Node<V>): Node<V> {
    let m = n.end;
    if (n.left && endAfter(n.left.maxEnd, m)) m = n.left.maxEnd;
    if (n.right && endAfter(n.right.maxEnd, m)) m = n.right.maxEnd;
    n.maxEnd = m;
    return n;
  }

  private insertAt(t: Node<V> | null, n: Node<V>): Node<V> {
    if (!t) return n;
    if (order(n, t.start, t.seq) < 0) {
      t.left = this.insertAt(t.left, n);
      if (t.left.prio > t.prio) return this.rotateRight(t);
    } else {
      t.right = this.insertAt(t.right, n);
      if (t.right.prio > t.prio) return this.rotateLeft(t);
    }
    return this.fix(t);
  }

  private removeAt(t: Node<V> | null, start: string, seq: number): Node<V> | null {
    if (!t) return null;
    const c = order(t, start, seq);
    if (c > 0) t.left = this.removeAt(t.left, start, seq);
    else if (c < 0) t.right = this.removeAt(t.right, start, seq);
    else {
      this.count--;
      return this.merge(t.left, t.right);
    }
    return this.fix(t);
  }

  private merge(a: Node<V> | null, b: Node<V> | null): Node<V> | null {
    if (!a) return b;
    if (!b) return a;
    if (a.prio > b.prio) {
      a.right = this.merge(a.right, b);
      return this.fix(a);
    }
    b.left = this.merge(a, b.left);
    return this.fix(b);
  }

  private rotateRight(t: Node<V>): Node<V> {
    const l = t.left as Node<V>;
    t.left = l.right;
    l.right = this.fix(t);
    return this.fix(l);
  }

  private rotateLeft(t: Node<V>): Node<V> {
    const r = t.right as Node<V>;
    t.right = r.left;
    r.left = this.fix(t);
    return this.fix(r);
  }
}

export interface IntervalHandle {
  readonly start: string;
  readonly seq: number;
}

/**
 * A red-black interval tree that answers exactly as etcd's permission cache does (etcd's
 * pkg/adt: CLRS insertion, subtree maxima, its pruning visit and intersection walk). For
 * well-formed intervals any correct interval structure gives the same answers; for odd ones
 * (a range end below its key, empty intervals) etcd's answers depend on the tree's shape and
 * its pruning, so the shape is built the same way: same insertion order, same rotations.
 * Bounds are "affine" bytes: an empty bound is greater than every other.
 */

export function affineCmp(a: Buffer, b: Buffer): number {
  if (a.length === 0) return b.length === 0 ? 0 : 1;
  if (b.length === 0) return -1;
  return Buffer.compare(a, b);
}

export interface Interval {
  begin: Buffer;
  end: Buffer;
}

/** etcd's Interval.Compare: -1 left of, 1 right of, 0 overlapping. */
export function compareIntervals(a: Interval, b: Interval): number {
  if (affineCmp(a.begin, b.begin) < 0 && affineCmp(a.end, b.begin) <= 0) return -1;
  if (affineCmp(a.begin, b.end) >= 0) return 1;
  return 0;
}

const RED = 0;
const BLACK = 1;

interface Node {
  iv: Interval;
  max: Buffer;
  left: Node;
  right: Node;
  parent: Node;
  color: number;
}

export class IntervalTree {
  private readonly nil: Node;
  private root: Node;

  constructor() {
    const nil = { color: BLACK } as Node;
    nil.left = nil;
    nil.right = nil;
    nil.parent = nil;
    this.nil = nil;
    this.root = nil;
  }

  insert(iv: Interval): void {
    const nil = this.nil;
    let y = nil;
    const z: Node = { iv, max: iv.end, left: nil, right: nil, parent: nil, color: RED };
    let x = this.root;
    while (x !== nil) {
      y = x;
      x = affineCmp(z.iv.begin, x.iv.begin) < 0 ? x.left : x.right;
    }
    z.parent = y;
    if (y === nil) {
      this.root = z;
    } else {
      if (affineCmp(z.iv.begin, y.iv.begin) < 0) y.left = z;
      else y.right = z;
      this.updateMax(y);
    }
    z.color = RED;
    this.insertFixup(z);
  }

  /** Does some interval touch `iv`? (etcd's Intersects walk, used for single keys.) */
  intersects(iv: Interval): boolean {
    const nil = this.nil;
    let x = this.root;
    while (x !== nil && compareIntervals(iv, x.iv) !== 0) {
      x = x.left !== nil && affineCmp(x.left.max, iv.begin) > 0 ? x.left : x.right;
    }
    return x !== nil;
  }

  /** Do the intervals cover all of `iv`? (etcd's Contains over its pruning visit.) */
  contains(iv: Interval): boolean {
    let minBegin: Buffer | null = null;
    let maxEnd: Buffer | null = null;
    let contiguous = true;
    this.visit(this.root, iv, (n) => {
      if (minBegin === null || maxEnd === null) {
        minBegin = n.iv.begin;
        maxEnd = n.iv.end;
        return true;
      }
      if (affineCmp(maxEnd, n.iv.begin) < 0) {
        contiguous = false;
        return false;
      }
      if (affineCmp(n.iv.end, maxEnd) > 0) maxEnd = n.iv.end;
      return true;
    });
    if (minBegin === null || maxEnd === null) return false;
    return contiguous && affineCmp(maxEnd, iv.end) >= 0 && affineCmp(minBegin, iv.begin) <= 0;
  }

  private visit(x: Node, iv: Interval, fn: (n: Node) => boolean): boolean {
    if (x === this.nil) return true;
    const v = compareIntervals(iv, x.iv);
    if (v < 0) {
      if (!this.visit(x.left, iv, fn)) return false;
    } else if (v > 0) {
      if (compareIntervals({ begin: x.iv.begin, end: x.max }, iv) === 0) {
        if (!this.visit(x.left, iv, fn) || !this.visit(x.right, iv, fn)) return false;
      }
    } else if (!this.visit(x.left, iv, fn) || !fn(x) || !this.visit(x.right, iv, fn)) {
      return false;
    }
    return true;
  }

  /** Recomputes maxima upwards, stopping where nothing changes (as etcd does). */
  private updateMax(start: Node): void {
    const nil = this.nil;
    let x = start;
    while (x !== nil) {
      const old = x.max;
      let max = x.iv.end;
      if (x.left !== nil && affineCmp(x.left.max, max) > 0) max = x.left.max;
      if (x.right !== nil && affineCmp(x.right.max, max) > 0) max = x.right.max;
      if (affineCmp(old, max) === 0) break;
      x.max = max;
      x = x.parent;
    }
  }

  private insertFixup(start: Node): void {
    let z = start;
    while (z.parent.color === RED) {
      if (z.parent === z.parent.parent.left) {
        const y = z.parent.parent.right;
        if (y.color === RED) {
          y.color = BLACK;
          z.parent.color = BLACK;
          z.parent.parent.color = RED;
          z = z.parent.parent;
        } else {
          if (z === z.parent.right) {
            z = z.parent;
            this.rotateLeft(z);
          }
          z.parent.color = BLACK;
          z.parent.parent.color = RED;
          this.rotateRight(z.parent.parent);
        }
      } else {
        const y = z.parent.parent.left;
        if (y.color === RED) {
          y.color = BLACK;
          z.parent.color = BLACK;
          z.parent.parent.color = RED;
          z = z.parent.parent;
        } else {
          if (z === z.parent.left) {
            z = z.parent;
            this.rotateRight(z);
          }
          z.parent.color = BLACK;
          z.parent.parent.color = RED;
          this.rotateLeft(z.parent.parent);
        }
      }
    }
    this.root.color = BLACK;
  }

  private rotateLeft(x: Node): void {
    const nil = this.nil;
    if (x.right === nil) return;
    const y = x.right;
    x.right = y.left;
    if (y.left !== nil) y.left.parent = x;
    this.updateMax(x);
    this.replaceParent(x, y);
    y.left = x;
    this.updateMax(y);
  }

  private rotateRight(x: Node): void {
    const nil = this.nil;
    if (x.left === nil) return;
    const y = x.left;
    x.left = y.right;
    if (y.right !== nil) y.right.parent = x;
    this.updateMax(x);
    this.replaceParent(x, y);
    y.right = x;
    this.updateMax(y);
  }

  private replaceParent(x: Node, y: Node): void {
    y.parent = x.parent;
    if (x.parent === this.nil) {
      this.root = y;
    } else {
      if (x === x.parent.left) x.parent.left = y;
      else x.parent.right = y;
      this.updateMax(x.parent);
    }
    x.parent = y;
  }
}

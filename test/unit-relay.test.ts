/**
 * watch/relay.ts on its own: what a follower gets from a feed's responses (from the member
 * revision it asks, kept responses first), what is refused, progress answers only after the
 * member answered the owner, and a follower too far behind dropped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FeedRelay, type RelayedResponse, type RelaySink } from '../src/watch/relay.js';
import type { MemberEvent } from '../src/watch/decoder.js';

const RANGE = { key: Buffer.from([0]), range_end: Buffer.from('z') };

function ev(rev: number, key = `k${rev}`, size = 10): MemberEvent {
  const s = String(rev);
  return {
    type: 0,
    kv: { key: Buffer.from(key), value: Buffer.alloc(size), create_revision: s, mod_revision: s, version: '1', lease: '0' },
    prev_kv: null,
  };
}

function resp(...revs: number[]): RelayedResponse {
  return { header: { revision: String(revs[revs.length - 1]) }, events: revs.map((r) => ev(r)) };
}

function fakeFeed(next: bigint) {
  const f = { nextMemberRev: next, progressAnswers: 0, asked: 0, state: { open: true, prevKv: false, range: RANGE } };
  return Object.assign(f, { requestProgress: () => void f.asked++ });
}

function sink(room = Infinity) {
  const got: Array<{ revs: string[]; created?: boolean; canceled?: boolean; progress?: boolean }> = [];
  let ended: string | null = null;
  const s: RelaySink = {
    send: (res) => {
      const r = res as { created?: boolean; events: MemberEvent[] };
      got.push({ revs: r.events.map((e) => e.kv!.mod_revision), created: r.created || undefined, progress: !r.created && r.events.length === 0 ? true : undefined });
      return got.length < room;
    },
    end: (why) => {
      ended = why;
    },
  };
  return { s, got, ended: () => ended };
}

test('relay: a follower gets kept responses from the revision it asks (a response cut at it), then live ones', () => {
  const feed = fakeFeed(10n);
  const relay = new FeedRelay(feed, 's1');
  relay.opened(10n);
  relay.push(resp(10, 11));
  relay.push(resp(12, 12, 13));
  const a = sink();
  const f = relay.follow(a.s, { from: 12n, prevKv: false, range: RANGE });
  assert.notEqual(typeof f, 'string');
  relay.push(resp(14));
  assert.deepEqual(a.got.map((g) => g.revs), [[], ['12', '12', '13'], ['14']]);
  assert.equal(a.got[0]!.created, true);
  const b = sink();
  relay.follow(b.s, { from: 11n, prevKv: false, range: RANGE });
  assert.deepEqual(b.got.map((g) => g.revs), [[], ['11'], ['12', '12', '13'], ['14']], 'a response that starts below `from` is cut');
  assert.equal(relay.followerCount, 2);
});

test('relay: refuses history it no longer keeps, prev_kv it does not read, another range, a feed not reading the member', () => {
  const feed = fakeFeed(5n);
  const relay = new FeedRelay(feed, 's1');
  relay.opened(5n);
  const s = sink().s;
  assert.match(relay.follow(s, { from: 4n, prevKv: false, range: RANGE }) as string, /no longer kept/);
  assert.match(relay.follow(s, { from: 5n, prevKv: true, range: RANGE }) as string, /prev_kv/);
  assert.match(relay.follow(s, { from: 5n, prevKv: false, range: { key: Buffer.from('a'), range_end: Buffer.from('b') } }) as string, /range/);
  feed.state.open = false;
  assert.match(relay.follow(s, { from: 5n, prevKv: false, range: RANGE }) as string, /not reading/);
  assert.equal(relay.followerCount, 0);
});

test('relay: evicting kept responses past its bytes moves what it can serve', () => {
  const feed = fakeFeed(1n);
  const relay = new FeedRelay(feed, 's1');
  relay.opened(1n);
  // 9 responses of ~1 MiB: more than the 4 MiB kept.
  for (let r = 1; r <= 9; r++) relay.push({ events: [ev(r, `k${r}`, 1 << 20)] });
  assert.equal(typeof relay.follow(sink().s, { from: 1n, prevKv: false, range: RANGE }), 'string');
  assert.notEqual(typeof relay.follow(sink().s, { from: 8n, prevKv: false, range: RANGE }), 'string');
});

test('relay: a progress request is answered after the next member answer, not with one that came before it', () => {
  const feed = fakeFeed(3n);
  const relay = new FeedRelay(feed, 's1');
  relay.opened(3n);
  const a = sink();
  const f = relay.follow(a.s, { from: 3n, prevKv: false, range: RANGE });
  assert.notEqual(typeof f, 'string');
  feed.progressAnswers = 4;
  relay.requestProgress(f as Exclude<typeof f, string>);
  assert.equal(feed.asked, 1, 'the member is asked');
  relay.progressAnswered(); // no new answer since the request
  assert.equal(a.got.filter((g) => g.progress).length, 0);
  feed.progressAnswers = 5;
  relay.progressAnswered();
  assert.equal(a.got.filter((g) => g.progress).length, 1);
  relay.progressAnswered();
  assert.equal(a.got.filter((g) => g.progress).length, 1, 'one answer per request');
});

test('relay: a follower too far behind is dropped; a reset ends every follower', () => {
  const feed = fakeFeed(1n);
  const relay = new FeedRelay(feed, 's1');
  relay.opened(1n);
  const slow = sink(3);
  const fine = sink();
  relay.follow(slow.s, { from: 1n, prevKv: false, range: RANGE });
  relay.follow(fine.s, { from: 1n, prevKv: false, range: RANGE });
  for (let r = 1; r <= 4; r++) relay.push(resp(r));
  assert.match(slow.ended() ?? '', /behind/);
  assert.equal(relay.followerCount, 1);
  feed.nextMemberRev = 5n; // the feed read through 4
  relay.reset('stopped');
  assert.equal(fine.ended(), 'stopped');
  assert.equal(relay.followerCount, 0);
  assert.equal(typeof relay.follow(sink().s, { from: 1n, prevKv: false, range: RANGE }), 'string', 'kept responses went with the reset');
});

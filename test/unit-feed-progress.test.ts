/**
 * Unit tests of the member feed's progress requests (src/watch/feed.ts): asked again until
 * answered, but never piled up on a stream that does not read them (a stopped member), and sent
 * at once on a reopened stream.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import pino from 'pino';
import { ShardFeed } from '../src/watch/feed.js';
import { Keyspace } from '../src/shard/keyspace.js';
import type { Shard } from '../src/shard/shard.js';

class FakeStream extends EventEmitter {
  writes: string[] = [];
  write(m: Record<string, unknown>): boolean {
    this.writes.push(Object.keys(m)[0]!);
    return true;
  }
  cancel(): void {}
  pause(): void {}
  resume(): void {}
  get progressRequests(): number {
    return this.writes.filter((w) => w === 'progress_request').length;
  }
}

function feedOn(streams: FakeStream[]) {
  const shard = {
    index: 0,
    name: 's0',
    upstream: {
      openWatch: () => {
        const stream = new FakeStream();
        streams.push(stream);
        return { stream, endpoint: 'fake' };
      },
    },
  } as unknown as Shard;
  return new ShardFeed({ shard, ks: new Keyspace(), log: pino({ level: 'silent' }), fromMemberRev: 1n, watermark: 0n, onDecoded: () => undefined, onLost: () => undefined });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('feed: many vouches on a stream that never answers write one progress request per 500 ms at most, backing off', async () => {
  const streams: FakeStream[] = [];
  const feed = feedOn(streams);
  feed.start();
  try {
    const stream = streams[0]!;
    // A vouch every 20 ms for 1.6 s (as under 50 writes/s); the member never answers.
    for (let i = 0; i < 80; i++) {
      feed.requestProgress();
      await sleep(20);
    }
    const sent = stream.progressRequests;
    // Unpaced this was 80; paced: the first, re-sends after 0.5, 1.5 s, and the vouches' own at most one per 500 ms.
    assert.ok(sent >= 2 && sent <= 6, `sent ${sent} progress requests`);
  } finally {
    feed.close();
  }
});

test('feed: a pending progress request goes at once to a reopened stream; an answer stops the re-sends', async () => {
  const streams: FakeStream[] = [];
  const feed = feedOn(streams);
  feed.start();
  try {
    feed.requestProgress();
    assert.equal(streams[0]!.progressRequests, 1);
    feed.reopen();
    assert.equal(streams.length, 2);
    assert.equal(streams[1]!.progressRequests, 1, 'the new stream is asked without waiting for the retry');
    // The member answers (a response with a header and no events).
    streams[1]!.emit('data', { header: { revision: '5' }, events: [], created: false, canceled: false });
    assert.equal(feed.progressAnswers, 1);
    await sleep(700);
    assert.equal(streams[1]!.progressRequests, 1, 'answered: no re-send');
    feed.requestProgress();
    assert.equal(streams[1]!.progressRequests, 2, 'a new vouch after the answer asks at once');
  } finally {
    feed.close();
  }
});

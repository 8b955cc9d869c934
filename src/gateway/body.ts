/**
 * Request bodies: read whole for a unary call, or value by value for a streaming one (a watch
 * or keepalive client may keep sending requests in one chunked body). Bounded: a body (or a
 * pending value) larger than the cap is refused, as etcd refuses a message larger than its gRPC
 * receive limit.
 */
import type http from 'node:http';
import { GoJsonError, readJsonValue, UnexpectedEof, type JsonValue } from './json-parse.js';

export class BodyTooLarge extends Error {
  constructor(readonly received: number) {
    super('request body too large');
  }
}

/** The whole body as text; rejects with BodyTooLarge past `cap` bytes (then stops reading). */
export function readBody(req: http.IncomingMessage, cap: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > cap) {
        req.pause();
        reject(new BodyTooLarge(size));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export type NextValue = { value: JsonValue } | { eof: true } | { error: GoJsonError | BodyTooLarge };

/** The JSON values of a streaming body, in order, as they arrive. */
export class JsonValueStream {
  private text = '';
  private pos = 0;
  private ended = false;
  private wake: (() => void) | null = null;

  constructor(
    req: http.IncomingMessage,
    private readonly cap: number,
  ) {
    req.setEncoding('utf8');
    req.on('data', (s: string) => {
      this.text += s;
      this.poke();
    });
    const end = () => {
      this.ended = true;
      this.poke();
    };
    req.on('end', end);
    req.on('error', end);
    req.on('close', end);
  }

  async next(): Promise<NextValue> {
    for (;;) {
      try {
        const r = readJsonValue(this.text, this.pos);
        if (r) {
          this.text = this.text.slice(r.end);
          this.pos = 0;
          return { value: r.value };
        }
        if (this.ended) return { eof: true };
      } catch (err) {
        if (!(err instanceof UnexpectedEof) || this.ended) return { error: err as GoJsonError };
      }
      if (this.text.length - this.pos > this.cap) return { error: new BodyTooLarge(this.text.length - this.pos) };
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private poke(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }
}

/**
 * A JSON reader that behaves like the Go decoder etcd's gateway uses (encoding/json's Decoder):
 * it reads one value at a time from a body that may hold several (a watch or keepalive stream
 * sends one request per value), keeps numbers as their source text (int64 fields must not pass
 * through a double), and fails with Go's error wording, which clients see in the error body.
 */

export type JsonValue =
  | { t: 'obj'; entries: Array<[string, JsonValue]> }
  | { t: 'arr'; items: JsonValue[] }
  | { t: 'str'; v: string }
  | { t: 'num'; raw: string }
  | { t: 'bool'; v: boolean }
  | { t: 'null' };

/** A syntax error worded as Go's encoding/json words it. */
export class GoJsonError extends Error {}

/** The input ended inside a value (Go: io.ErrUnexpectedEOF). */
export class UnexpectedEof extends GoJsonError {
  constructor() {
    super('unexpected EOF');
  }
}

/** Go's quoteChar: the offending character as it appears in scanner errors. */
function quoteChar(c: string): string {
  if (c === "'") return `'\\''`;
  if (c === '"') return `'"'`;
  const code = c.codePointAt(0) ?? 0;
  if (code < 0x20 || code === 0x7f) return `'\\x${code.toString(16).padStart(2, '0')}'`;
  return `'${c}'`;
}

const invalid = (c: string, context: string) => new GoJsonError(`invalid character ${quoteChar(c)} ${context}`);

const isSpace = (c: string) => c === ' ' || c === '\t' || c === '\n' || c === '\r';
const isDigit = (c: string) => c >= '0' && c <= '9';

class Reader {
  i: number;
  constructor(
    readonly s: string,
    start: number,
  ) {
    this.i = start;
  }

  peek(): string {
    if (this.i >= this.s.length) throw new UnexpectedEof();
    return this.s[this.i]!;
  }

  skipSpace(): void {
    while (this.i < this.s.length && isSpace(this.s[this.i]!)) this.i++;
  }

  value(): JsonValue {
    this.skipSpace();
    const c = this.peek();
    if (c === '{') return this.object();
    if (c === '[') return this.array();
    if (c === '"') return { t: 'str', v: this.string() };
    if (c === '-' || isDigit(c)) return { t: 'num', raw: this.number() };
    if (c === 't') return this.literal('true', { t: 'bool', v: true });
    if (c === 'f') return this.literal('false', { t: 'bool', v: false });
    if (c === 'n') return this.literal('null', { t: 'null' });
    throw invalid(c, 'looking for beginning of value');
  }

  private object(): JsonValue {
    this.i++;
    const entries: Array<[string, JsonValue]> = [];
    this.skipSpace();
    if (this.peek() === '}') {
      this.i++;
      return { t: 'obj', entries };
    }
    for (;;) {
      this.skipSpace();
      const c = this.peek();
      if (c !== '"') throw invalid(c, 'looking for beginning of object key string');
      const key = this.string();
      this.skipSpace();
      const colon = this.peek();
      if (colon !== ':') throw invalid(colon, 'after object key');
      this.i++;
      entries.push([key, this.value()]);
      this.skipSpace();
      const next = this.peek();
      this.i++;
      if (next === '}') return { t: 'obj', entries };
      if (next !== ',') throw invalid(next, 'after object key:value pair');
    }
  }

  private array(): JsonValue {
    this.i++;
    const items: JsonValue[] = [];
    this.skipSpace();
    if (this.peek() === ']') {
      this.i++;
      return { t: 'arr', items };
    }
    for (;;) {
      items.push(this.value());
      this.skipSpace();
      const next = this.peek();
      this.i++;
      if (next === ']') return { t: 'arr', items };
      if (next !== ',') throw invalid(next, 'after array element');
    }
  }

  private string(): string {
    const start = this.i;
    this.i++;
    for (;;) {
      const c = this.peek();
      if (c === '"') break;
      if (c === '\\') {
        this.i++;
        const e = this.peek();
        if (e === 'u') {
          for (let k = 1; k <= 4; k++) {
            this.i++;
            const h = this.peek();
            if (!/[0-9a-fA-F]/.test(h)) throw invalid(h, 'in \\u hexadecimal character escape');
          }
        } else if (!'"\\/bfnrt'.includes(e)) throw invalid(e, 'in string escape code');
      } else if (c < ' ') throw invalid(c, 'in string literal');
      this.i++;
    }
    this.i++;
    return JSON.parse(this.s.slice(start, this.i)) as string;
  }

  private number(): string {
    const start = this.i;
    const more = () => this.i < this.s.length;
    if (this.s[this.i] === '-') {
      this.i++;
      const c = this.peek();
      if (!isDigit(c)) throw invalid(c, 'in numeric literal');
    }
    if (this.s[this.i] === '0') this.i++;
    else while (more() && isDigit(this.s[this.i]!)) this.i++;
    if (more() && this.s[this.i] === '.') {
      this.i++;
      const c = this.peek();
      if (!isDigit(c)) throw invalid(c, 'after decimal point in numeric literal');
      while (more() && isDigit(this.s[this.i]!)) this.i++;
    }
    if (more() && (this.s[this.i] === 'e' || this.s[this.i] === 'E')) {
      this.i++;
      if (this.peek() === '+' || this.peek() === '-') this.i++;
      const c = this.peek();
      if (!isDigit(c)) throw invalid(c, 'in exponent of numeric literal');
      while (more() && isDigit(this.s[this.i]!)) this.i++;
    }
    return this.s.slice(start, this.i);
  }

  private literal(word: string, v: JsonValue): JsonValue {
    for (let k = 0; k < word.length; k++) {
      const c = this.peek();
      if (c !== word[k]) throw invalid(c, `in literal ${word} (expecting ${quoteChar(word[k]!)})`);
      this.i++;
    }
    return v;
  }
}

/**
 * Reads the next value of `text` from `start`. Returns null when only white space is left
 * (Go: io.EOF), else the value and where the next one may begin. Throws UnexpectedEof when the
 * text ends inside the value (a stream may still be sending it) and GoJsonError on bad syntax.
 */
export function readJsonValue(text: string, start: number): { value: JsonValue; end: number } | null {
  const r = new Reader(text, start);
  r.skipSpace();
  if (r.i >= text.length) return null;
  const value = r.value();
  return { value, end: r.i };
}

/** Go's name for a JSON value's kind, as in "json: cannot unmarshal <kind> into Go value of type ...". */
export function kindOf(v: JsonValue): string {
  switch (v.t) {
    case 'obj':
      return 'object';
    case 'arr':
      return 'array';
    case 'str':
      return 'string';
    case 'num':
      return 'number';
    case 'bool':
      return 'bool';
    case 'null':
      return 'null';
  }
}

/**
 * Parses the relaxed JSON the server's C++ tests write (`fromjson("{$set: {'a.b': 6}}")`) into
 * exactly typed `bson` values, with `fromjson`'s number rules: an integer is an int32 when it fits
 * (else an int64), a number with a fraction or exponent a double; `NumberInt(..)`,
 * `NumberLong(..)` and `NumberDecimal(..)` as written. Keys may be unquoted (`$set`, `a.b`) and
 * strings single-quoted. Text after the first complete value is ignored, as `fromjson` does.
 */
import { Decimal128, Double, Int32, Long, type Document } from "bson";

export function fromjson(text: string): Document {
  const parser = new Parser(text);
  const value = parser.value();
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error("not a document");
  return value as Document;
}

class Parser {
  private at = 0;

  constructor(private readonly text: string) {}

  value(): unknown {
    this.space();
    const char = this.text[this.at];
    if (char === "{") return this.object();
    if (char === "[") return this.array();
    if (char === "'" || char === '"') return this.string();
    if (char === "-" || (char >= "0" && char <= "9")) return this.number();
    const word = this.word();
    if (word === "true") return true;
    if (word === "false") return false;
    if (word === "null") return null;
    if (word === "NumberInt" || word === "NumberLong" || word === "NumberDecimal") return this.call(word);
    throw new Error(`unexpected "${word}" at ${this.at} in ${this.text}`);
  }

  private object(): Document {
    const doc: Document = {};
    this.expect("{");
    this.space();
    if (this.peek("}")) return doc;
    do {
      this.space();
      const char = this.text[this.at];
      const key = char === "'" || char === '"' ? this.string() : this.word();
      this.space();
      this.expect(":");
      Object.defineProperty(doc, key, {
        value: this.value(),
        enumerable: true,
        writable: true,
        configurable: true,
      });
      this.space();
    } while (this.peek(","));
    this.expect("}");
    return doc;
  }

  private array(): unknown[] {
    const items: unknown[] = [];
    this.expect("[");
    this.space();
    if (this.peek("]")) return items;
    do items.push(this.value());
    while ((this.space(), this.peek(",")));
    this.space();
    this.expect("]");
    return items;
  }

  private string(): string {
    const quote = this.text[this.at++];
    let out = "";
    while (this.text[this.at] !== quote) {
      if (this.at >= this.text.length) throw new Error("unterminated string");
      if (this.text[this.at] === "\\") this.at++;
      out += this.text[this.at++];
    }
    this.at++;
    return out;
  }

  private number(): unknown {
    const match = /^-?\d+(\.\d*)?([eE][-+]?\d+)?/.exec(this.text.slice(this.at));
    if (!match) throw new Error(`bad number at ${this.at}`);
    this.at += match[0].length;
    if (match[1] !== undefined || match[2] !== undefined) return new Double(Number(match[0]));
    const n = BigInt(match[0]);
    return n >= -(2n ** 31n) && n < 2n ** 31n ? new Int32(Number(n)) : Long.fromBigInt(n);
  }

  private call(name: string): unknown {
    this.space();
    this.expect("(");
    this.space();
    const char = this.text[this.at];
    const raw = char === "'" || char === '"' ? this.string() : /^-?[\d.]+/.exec(this.text.slice(this.at))![0];
    if (char !== "'" && char !== '"') this.at += raw.length;
    this.space();
    this.expect(")");
    if (name === "NumberInt") return new Int32(Number(raw));
    if (name === "NumberLong") return Long.fromString(raw);
    return Decimal128.fromString(raw);
  }

  private word(): string {
    const match = /^[\w$.]+/.exec(this.text.slice(this.at));
    if (!match) throw new Error(`expected a name at ${this.at} in ${this.text}`);
    this.at += match[0].length;
    return match[0];
  }

  private space(): void {
    while (/\s/.test(this.text[this.at] ?? "")) this.at++;
  }

  private peek(char: string): boolean {
    if (this.text[this.at] !== char) return false;
    this.at++;
    return true;
  }

  private expect(char: string): void {
    if (!this.peek(char)) throw new Error(`expected "${char}" at ${this.at} in ${this.text}`);
  }
}

/**
 * The oplog entry model: typed access to an entry's fields straight from its raw BSON. `o` and
 * `o2` stay raw (an insert's `o` is stored byte for byte and is only decoded when an update
 * needs it); the small fields are decoded one at a time.
 *
 * Fields (MongoDB 7.0 `oplog_entry.idl`): op, ns, ui, o, o2, ts, t, v, wall, lsid, txnNumber,
 * stmtId, prevOpTime, b (upsert), fromMigrate, multiOpType, and inside applyOps `o`: partialTxn,
 * prepare, count. Operations inside an applyOps array are entries too, without ts: they take
 * the ts of the entry that holds them.
 */
import { Long, Timestamp, UUID, Binary, type Document } from "bson";
import { elements, type RawElement } from "../../bson/elements.js";
import { deserializeExact } from "../../headdb/exactBson.js";
import type { OpTime } from "../../headdb/resumeState.js";

/** `prevOpTime` of the first entry of a chain: `{ts: Timestamp(0, 0), t: -1}`. */
export function isNullOpTime(optime: OpTime | undefined): boolean {
  return optime === undefined || (optime.ts.t === 0 && optime.ts.i === 0);
}

export function compareTimestamps(a: Timestamp, b: Timestamp): number {
  return a.t !== b.t ? a.t - b.t : a.i - b.i;
}

export class OplogEntry {
  private readonly fields = new Map<string, RawElement>();
  private decodedO?: Document;

  /**
   * @param raw the entry's BSON
   * @param parent for an operation inside applyOps, the entry that holds it
   */
  constructor(
    readonly raw: Buffer,
    readonly parent?: OplogEntry,
  ) {
    for (const element of elements(raw))
      if (!this.fields.has(element.name)) this.fields.set(element.name, element);
  }

  /** The top-level entry (itself, or the outermost applyOps holding it). */
  get top(): OplogEntry {
    return this.parent ? this.parent.top : this;
  }

  has(name: string): boolean {
    return this.fields.has(name);
  }

  /** One field, decoded with exact types; undefined when absent. */
  field(name: string): unknown {
    const element = this.fields.get(name);
    if (!element) return undefined;
    if (element.type === 0x03)
      return deserializeExact(this.raw.subarray(element.valueStart, element.valueEnd));
    return decodeElement(this.raw, element);
  }

  /** The raw BSON of an embedded document field, without copying. */
  documentBytes(name: string): Buffer | undefined {
    const element = this.fields.get(name);
    if (!element || element.type !== 0x03) return undefined;
    return this.raw.subarray(element.valueStart, element.valueEnd);
  }

  /** The raw BSON of each document in an array field (applyOps), without copying. */
  arrayDocuments(name: string): Buffer[] | undefined {
    const element = this.fields.get(name);
    if (!element || element.type !== 0x04) return undefined;
    const items: Buffer[] = [];
    for (const item of elements(this.raw, element.valueStart)) {
      if (item.type !== 0x03) return undefined;
      items.push(this.raw.subarray(item.valueStart, item.valueEnd));
    }
    return items;
  }

  get op(): unknown {
    return this.field("op");
  }

  get ns(): unknown {
    return this.field("ns");
  }

  /** The collection UUID (`ui`), when the entry has one. */
  get ui(): UUID | undefined {
    const ui = this.field("ui");
    return ui instanceof Binary && ui.sub_type === Binary.SUBTYPE_UUID && ui.position === 16
      ? new UUID(ui.buffer.subarray(0, 16))
      : undefined;
  }

  /** `o` decoded (cached). */
  get o(): Document | undefined {
    if (this.decodedO === undefined) {
      const bytes = this.documentBytes("o");
      if (bytes) this.decodedO = deserializeExact(bytes);
    }
    return this.decodedO;
  }

  get oBytes(): Buffer | undefined {
    return this.documentBytes("o");
  }

  get o2Bytes(): Buffer | undefined {
    return this.documentBytes("o2");
  }

  /** The entry's own ts, or its holder's for an operation inside applyOps. */
  get ts(): Timestamp | undefined {
    const ts = this.field("ts");
    if (ts instanceof Timestamp) return ts;
    return this.parent?.ts;
  }

  get t(): Long | undefined {
    const t = this.field("t");
    if (t instanceof Long) return t;
    if (typeof t === "number" || (t && typeof t === "object" && "value" in t))
      return Long.fromNumber(Number(t));
    return this.parent?.t;
  }

  /** `{ts, t}` of this entry (t defaults to -1 when absent, as for pre-3.2 entries). */
  get optime(): OpTime | undefined {
    const ts = this.ts;
    return ts && { ts, t: this.t ?? Long.fromNumber(-1) };
  }

  get lsid(): Document | undefined {
    const lsid = this.field("lsid");
    return lsid && typeof lsid === "object" ? (lsid as Document) : undefined;
  }

  get txnNumber(): Long | undefined {
    const n = this.field("txnNumber");
    if (n instanceof Long) return n;
    return n === undefined ? undefined : Long.fromNumber(Number(n));
  }

  get prevOpTime(): OpTime | undefined {
    const prev = this.field("prevOpTime") as Document | undefined;
    if (!prev || !(prev.ts instanceof Timestamp)) return undefined;
    return { ts: prev.ts, t: prev.t instanceof Long ? prev.t : Long.fromNumber(Number(prev.t ?? -1)) };
  }

  /** `b: true`: the update was an upsert. */
  get upsert(): boolean {
    return this.field("b") === true;
  }

  get multiOpType(): number | undefined {
    const value = this.field("multiOpType");
    return value === undefined ? undefined : Number(value);
  }
}

/** Decodes one element by wrapping it in a document of its own (types kept exactly). */
function decodeElement(raw: Buffer, element: RawElement): unknown {
  const start = element.valueStart - Buffer.byteLength(element.name, "utf8") - 2;
  const body = raw.subarray(start, element.valueEnd);
  const doc = Buffer.alloc(body.length + 5);
  doc.writeInt32LE(doc.length, 0);
  body.copy(doc, 4);
  return deserializeExact(doc)[element.name];
}

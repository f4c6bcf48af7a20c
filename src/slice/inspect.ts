import { EJSON, Timestamp, type Document } from "bson";
import type { Codec } from "./codecs.js";
import { SliceError, type SliceErrorCode } from "./errors.js";
import { countMismatch, decodeSlice, readSliceHeader, type SliceHeader, type SliceKind } from "./format.js";
import { oplogTerm, topLevelField } from "./rawFields.js";

/** A timestamp as MongoDB tools print it: seconds and increment. */
export interface TimestampJson {
  t: number;
  i: number;
}

/** An oplog position: the entry's `ts` and, when present, its election term `t`. */
export interface OptimeJson {
  ts: TimestampJson;
  t?: number;
}

/** Everything `tidemark slices inspect` shows; plain JSON, safe to JSON.stringify. */
export interface SliceSummary {
  /** "ok" when every check passed, otherwise the code of the first failed check. */
  status: "ok" | SliceErrorCode;
  error?: { code: SliceErrorCode; message: string };
  fileBytes: number;
  /** Absent when the header itself cannot be read. */
  header?: {
    kind: SliceKind;
    deployment: string;
    stream: string;
    sequence: number;
    namespace?: string;
    firstTs?: TimestampJson;
    lastTs?: TimestampJson;
    /** Canonical Extended JSON, so the exact BSON type shows ({"$numberInt": "7"}). */
    lastId?: unknown;
    count: number;
    uncompressedSize: number;
    compressedSize: number;
    codec: Codec;
    bodySha256: string;
    createdAt: string;
    extra?: unknown;
  };
  /** Documents actually found in the body, when it could be decompressed and split. */
  documents?: number;
  /** Oplog slices: read from the first and last entries themselves, not from the header. */
  firstOptime?: OptimeJson;
  lastOptime?: OptimeJson;
  sizes?: {
    compressed: number;
    uncompressed: number;
    /** Uncompressed bytes per compressed byte (4 means 4:1); null for an empty body. */
    ratio: number | null;
  };
}

function timestampJson(ts: Timestamp): TimestampJson {
  return { t: ts.t, i: ts.i };
}

function canonical(value: unknown): unknown {
  return EJSON.serialize(value, { relaxed: false });
}

function optime(entry: Buffer): OptimeJson | undefined {
  const ts = topLevelField(entry, "ts");
  if (!(ts instanceof Timestamp)) return undefined;
  const term = oplogTerm(entry);
  return term === undefined ? { ts: timestampJson(ts) } : { ts: timestampJson(ts), t: term };
}

function headerJson(header: SliceHeader): NonNullable<SliceSummary["header"]> {
  const json: NonNullable<SliceSummary["header"]> = {
    kind: header.kind,
    deployment: header.deployment,
    stream: header.stream,
    sequence: header.sequence,
    count: header.count,
    uncompressedSize: header.uncompressedSize,
    compressedSize: header.compressedSize,
    codec: header.codec,
    bodySha256: header.bodySha256.toString("hex"),
    createdAt: header.createdAt.toISOString(),
  };
  if (header.namespace !== undefined) json.namespace = header.namespace;
  if (header.firstTs) json.firstTs = timestampJson(header.firstTs);
  if (header.lastTs) json.lastTs = timestampJson(header.lastTs);
  if (header.lastId !== undefined) json.lastId = canonical(header.lastId);
  if (header.extra !== undefined) json.extra = canonical(header.extra as Document);
  return json;
}

function failed(summary: SliceSummary, error: unknown): SliceSummary {
  if (!(error instanceof SliceError)) throw error;
  summary.status = error.code;
  summary.error = { code: error.code, message: error.message };
  return summary;
}

/**
 * Reads a slice and reports what it holds and whether it is intact. Never throws for a damaged
 * slice: the damage is the `status`, and whatever could still be read is filled in.
 */
export function inspectSlice(buf: Uint8Array): SliceSummary {
  const summary: SliceSummary = { status: "ok", fileBytes: buf.length };
  let header: SliceHeader;
  try {
    header = readSliceHeader(buf);
  } catch (error) {
    return failed(summary, error);
  }
  summary.header = headerJson(header);
  summary.sizes = {
    compressed: header.compressedSize,
    uncompressed: header.uncompressedSize,
    ratio:
      header.compressedSize === 0
        ? null
        : Math.round((header.uncompressedSize / header.compressedSize) * 1000) / 1000,
  };
  try {
    // The count is checked here rather than in decodeSlice so a mismatch still shows the real one.
    const decoded = decodeSlice(buf, { checkCount: false });
    const documents = [...decoded.documents()];
    summary.documents = documents.length;
    if (header.kind === "oplog" && documents.length > 0) {
      summary.firstOptime = optime(documents[0]);
      summary.lastOptime = optime(documents[documents.length - 1]);
    }
    if (documents.length !== header.count) throw countMismatch(header.count, documents.length);
  } catch (error) {
    return failed(summary, error);
  }
  return summary;
}

/**
 * What the daemon needs to resume exactly after a crash, kept in the same LMDB transactions as
 * the data it describes: the applied optime (the last oplog entry whose effects are in the
 * documents), the phase state (an opaque blob the daemon owns: job phase, progress, the optime
 * of the last missing-document fetch...), and per stream the sequence number of the last slice
 * whose contents are fully applied. The last change number (`changes.ts`) is kept here too.
 */
import { randomUUID } from "node:crypto";
import { Long, serialize, Timestamp } from "bson";
import type { HeadEnvironment, ReadOptions } from "./environment.js";
import { HeadDbError } from "./errors.js";
import { deserializeExact } from "./exactBson.js";

/** An oplog position: `ts` orders entries; `t` is the term that wrote it. */
export interface OpTime {
  ts: Timestamp;
  t: Long;
}

const APPLIED_OPTIME = Buffer.from("appliedOptime");
const PHASE = Buffer.from("phase");
const IDENTITY = Buffer.from("identity");
const CURSOR_PREFIX = "cursor\0";

export class ResumeState {
  /** `read` gives the reads a snapshot's transaction (such an instance only reads). */
  constructor(
    private readonly env: HeadEnvironment,
    private readonly read: ReadOptions = {},
  ) {}

  appliedOptime(): OpTime | undefined {
    const raw = this.env.stores.state.get(APPLIED_OPTIME, { ...this.read });
    if (!raw) return undefined;
    const doc = deserializeExact(raw);
    if (!(doc.ts instanceof Timestamp) || !(doc.t instanceof Long))
      throw new HeadDbError("CORRUPT_RECORD", "the applied optime is not {ts: Timestamp, t: Long}");
    return { ts: doc.ts, t: doc.t };
  }

  setAppliedOptime(optime: OpTime): void {
    this.env.assertWriting("setting the applied optime");
    this.env.stores.state.putSync(APPLIED_OPTIME, Buffer.from(serialize({ ts: optime.ts, t: optime.t })));
  }

  /**
   * A random id given to the head database when it is created: a snapshot's deltas build on a
   * previous snapshot only of the same head database (after a resync, change numbers start over).
   */
  identity(): string | undefined {
    return this.env.stores.state.get(IDENTITY, { ...this.read })?.toString("utf8");
  }

  /** Gives the head database its identity, once (in a write). */
  ensureIdentity(): string {
    const existing = this.identity();
    if (existing) return existing;
    const id = randomUUID();
    this.env.stores.state.putSync(IDENTITY, Buffer.from(id, "utf8"));
    return id;
  }

  /** The daemon's phase state, as it last stored it. */
  phaseState(): Buffer | undefined {
    return this.env.stores.state.get(PHASE, { ...this.read });
  }

  setPhaseState(state: Uint8Array): void {
    this.env.assertWriting("setting the phase state");
    this.env.stores.state.putSync(PHASE, Buffer.from(state));
  }

  /** The sequence number of the last slice of `stream` fully in the head database. */
  sliceCursor(stream: string): number | undefined {
    const raw = this.env.stores.state.get(cursorKey(stream), { ...this.read });
    return raw === undefined ? undefined : Number(deserializeExact(raw).sequence);
  }

  setSliceCursor(stream: string, sequence: number): void {
    this.env.assertWriting("setting a slice cursor");
    if (!Number.isSafeInteger(sequence) || sequence < 0)
      throw new HeadDbError(
        "INVALID_ARGUMENT",
        `a slice sequence is a non-negative integer, not ${sequence}`,
      );
    this.env.stores.state.putSync(
      cursorKey(stream),
      Buffer.from(serialize({ sequence: Long.fromNumber(sequence) })),
    );
  }

  /** Every stream's cursor. */
  sliceCursors(): Map<string, number> {
    const cursors = new Map<string, number>();
    const start = Buffer.from(CURSOR_PREFIX);
    const end = Buffer.from("cursor\u0001");
    for (const { key, value } of this.env.stores.state.getRange({ start, end, ...this.read }))
      cursors.set(key.subarray(start.length).toString("utf8"), Number(deserializeExact(value).sequence));
    return cursors;
  }
}

function cursorKey(stream: string): Buffer {
  return Buffer.from(CURSOR_PREFIX + stream, "utf8");
}

import { Timestamp } from "bson";
import type { OpTimeJson } from "./agentProtocol.js";

/** An oplog `ts` as the protocol carries it: seconds `t` and increment `i`. */
export function toOpTime(ts: Timestamp): OpTimeJson {
  return { t: ts.high >>> 0, i: ts.low >>> 0 };
}

/** A head database's applied optime (`{ts, ...}`) as the protocol carries it; null before any. */
export function opTimeOf(optime: { ts: Timestamp } | undefined): OpTimeJson | null {
  return optime ? toOpTime(optime.ts) : null;
}

export function toTimestamp(optime: OpTimeJson): Timestamp {
  return new Timestamp({ t: optime.t, i: optime.i });
}

/** Negative, zero or positive, as `Array.prototype.sort` wants. */
export function compareOpTimes(a: OpTimeJson, b: OpTimeJson): number {
  return a.t !== b.t ? a.t - b.t : a.i - b.i;
}

/** `seconds:increment`, the form the CLI and the Backup page use. */
export function formatOpTime(optime: OpTimeJson | null | undefined): string {
  return optime ? `${optime.t}:${optime.i}` : "(none)";
}

import { Timestamp } from "bson";

/** Packs an optime into the oplog's RecordId, so natural order is timestamp order. */
export function recordIdOf(ts: Timestamp): bigint {
  return (BigInt(ts.high >>> 0) << 32n) | BigInt(ts.low >>> 0);
}

export function timestampOf(recordId: bigint): Timestamp {
  return new Timestamp({ t: Number(recordId >> 32n), i: Number(recordId & 0xffffffffn) });
}

/** Hands out strictly increasing cluster times: seconds since the epoch and an increment. */
export class ClusterClock {
  private seconds = 0;
  private increment = 0;

  next(): Timestamp {
    const now = Math.floor(Date.now() / 1000);
    if (now > this.seconds) {
      this.seconds = now;
      this.increment = 1;
    } else {
      this.increment++;
    }
    return new Timestamp({ t: this.seconds, i: this.increment });
  }

  /** The latest time handed out (or now, before any). */
  current(): Timestamp {
    if (this.seconds === 0) return new Timestamp({ t: Math.floor(Date.now() / 1000), i: 0 });
    return new Timestamp({ t: this.seconds, i: this.increment });
  }
}

import { decodeSlice, type DecodedSlice } from "../../src/slice/format.js";
import type { OutgoingSlice, SliceSink } from "../../src/agent/sliceSink.js";

/**
 * A SliceSink that keeps every slice in memory, checking what the server checks of the order:
 * a stream's slices arrive as 0, 1, 2... (or from the first sequence it was given).
 */
export class CollectingSink implements SliceSink {
  readonly slices: OutgoingSlice[] = [];
  private readonly next = new Map<string, number>();

  constructor(private readonly options: { delayMs?: number } = {}) {}

  async put(slice: OutgoingSlice): Promise<void> {
    const expected = this.next.get(slice.stream);
    if (expected !== undefined && slice.sequence !== expected) {
      throw new Error(`${slice.stream}: got #${slice.sequence}, expected #${expected}`);
    }
    this.next.set(slice.stream, slice.sequence + 1);
    if (this.options.delayMs) await new Promise((resolve) => setTimeout(resolve, this.options.delayMs));
    this.slices.push(slice);
  }

  async drain(): Promise<void> {}

  /** The slices of one stream, in order. */
  stream(name: string): OutgoingSlice[] {
    return this.slices.filter((slice) => slice.stream === name);
  }

  /** The slices of one stream, decoded. */
  decoded(name: string): DecodedSlice[] {
    return this.stream(name).map((slice) => decodeSlice(slice.bytes));
  }

  /** Every document of a stream, in order, as raw BSON. */
  documents(name: string): Buffer[] {
    return this.decoded(name).flatMap((slice) => [...slice.documents()].map((doc) => Buffer.from(doc)));
  }

  streams(): string[] {
    return [...new Set(this.slices.map((slice) => slice.stream))].sort();
  }
}

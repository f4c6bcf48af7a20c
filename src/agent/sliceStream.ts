import { setImmediate as nextTurn } from "node:timers/promises";
import type { Codec } from "../slice/codecs.js";
import { readSliceHeader, type SliceKind } from "../slice/format.js";
import { SliceBuilder } from "../slice/sliceBuilder.js";
import type { SliceSink } from "./sliceSink.js";

export interface SliceStreamOptions {
  sink: SliceSink;
  kind: SliceKind;
  deployment: string;
  stream: string;
  namespace?: string;
  codec: Codec;
  /** Largest slice, compressed (the --slice-mb setting in bytes). */
  targetBytes: number;
  /** Sequence number of the next slice (the job's nextSequence for this stream). */
  firstSequence: number;
}

/** Bytes of documents added between two turns of the event loop, in addAll. */
const YIELD_BYTES = 1024 * 1024;

/**
 * One stream of slices: documents go into a SliceBuilder, and every slice it cuts goes to the
 * sink, in sequence order. `add` waits while the sink has no room, so a fast reader cannot run
 * ahead of the uploads.
 */
export class SliceStream {
  private readonly builder: SliceBuilder;
  private documentsAdded = 0;
  private slicesCut = 0;

  constructor(private readonly options: SliceStreamOptions) {
    this.builder = new SliceBuilder({
      kind: options.kind,
      deployment: options.deployment,
      stream: options.stream,
      namespace: options.namespace,
      codec: options.codec,
      targetBytes: options.targetBytes,
      firstSequence: options.firstSequence,
      // Several streams build at once (clone parallelism + the oplog); 3 × the slice size each
      // keeps the agent's memory bounded while still cutting well-filled slices at usual ratios.
      maxBufferedBytes: options.targetBytes * 3,
    });
  }

  get stream(): string {
    return this.options.stream;
  }

  /** Documents added since this stream object was made. */
  get documents(): number {
    return this.documentsAdded;
  }

  /** Documents waiting in the builder for the next slice. */
  get bufferedDocuments(): number {
    return this.builder.bufferedDocuments;
  }

  get slices(): number {
    return this.slicesCut;
  }

  /** The sequence number the next slice will get. */
  get nextSequence(): number {
    return this.builder.nextSequence;
  }

  /**
   * Adds one raw document. The builder copies it, so it may be a view into a driver reply (nothing
   * of the reply is kept).
   */
  async add(raw: Uint8Array): Promise<void> {
    this.documentsAdded++;
    await this.send(this.builder.add(raw));
  }

  /**
   * Adds a batch of raw documents (copied, as by add). Yields to the event loop after about every
   * MiB, so I/O goes on while a large batch is sliced: the request for the next batch goes out,
   * replies and acknowledgements come in.
   */
  async addAll(documents: readonly Uint8Array[]): Promise<void> {
    let sinceYield = 0;
    for (const raw of documents) {
      this.documentsAdded++;
      const slices = this.builder.add(raw);
      if (slices.length > 0) await this.send(slices);
      sinceYield += raw.length;
      if (sinceYield >= YIELD_BYTES) {
        sinceYield = 0;
        await nextTurn();
      }
    }
  }

  /** Cuts whatever is buffered into a slice (nothing if the builder is empty). */
  async flush(): Promise<void> {
    await this.send(this.builder.flush());
  }

  /** Resolves once every slice of this stream is acknowledged. */
  drain(): Promise<void> {
    return this.options.sink.drain(this.options.stream);
  }

  private async send(slices: Buffer[]): Promise<void> {
    for (const bytes of slices) {
      const header = readSliceHeader(bytes);
      this.slicesCut++;
      await this.options.sink.put({
        stream: this.options.stream,
        sequence: header.sequence,
        bytes,
        documents: header.count,
      });
    }
  }
}

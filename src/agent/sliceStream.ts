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
   * Adds one raw document. The builder keeps it by reference until its slice is cut, so pass a
   * buffer of its own (not a view into a driver reply, which would keep the whole reply alive).
   */
  async add(raw: Buffer): Promise<void> {
    this.documentsAdded++;
    await this.send(this.builder.add(raw));
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

import type { Document } from "bson";
import type { Codec } from "./codecs.js";
import { checkWholeDocument } from "./documentChain.js";
import { encodeSlice, readSliceHeader, type SliceKind } from "./format.js";

/** DESIGN.md "Slices": 10 MB compressed per slice by default. */
export const DEFAULT_TARGET_BYTES = 10 * 1024 * 1024;
/** Uncompressed bytes held at most, as a multiple of the target: bounds memory whatever the ratio. */
export const DEFAULT_CAP_FACTOR = 8;
/**
 * Cut a little below the target: the ratio is only an estimate, and a slice that comes out too
 * large must be split in two, which costs a second compression and gives two half-full slices.
 */
const FILL = 0.97;
/** Header and framing bytes assumed before the first slice shows the real figure. */
const INITIAL_OVERHEAD = 512;

export interface SliceBuilderOptions {
  kind: SliceKind;
  deployment: string;
  stream: string;
  namespace?: string;
  /** Default zstd. */
  codec?: Codec;
  /** Sequence number of the first slice this builder cuts (resume after the last acknowledged one). */
  firstSequence?: number;
  /** Largest slice, compressed, header included (default 10 MiB). */
  targetBytes?: number;
  /** Most uncompressed bytes buffered at once (default 8 × targetBytes). */
  maxBufferedBytes?: number;
  /** Copied into every slice's header. */
  extra?: Document;
  /** Clock for createdAt. */
  now?: () => Date;
}

/**
 * Collects the raw BSON documents of one stream and cuts them into slices of at most
 * `targetBytes` compressed. How well the next slice will compress is not known until it is
 * compressed, so the builder keeps an estimate of the compressed/uncompressed ratio: it starts
 * at 1 (no compression, so the first slice cannot come out too large) and learns from every
 * slice it encodes. A slice that still comes out too large is split in halves and re-encoded; a
 * single document larger than the target becomes a slice of its own. Documents are kept by
 * reference until their slice is cut, so callers must not reuse their buffers.
 */
export class SliceBuilder {
  private readonly targetBytes: number;
  private readonly capBytes: number;
  private readonly codec: Codec;
  private sequence: number;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  /** Estimated compressed body bytes per uncompressed byte; only rises at once, falls gradually. */
  private ratio = 1;
  /** Header and framing bytes of the last slice. */
  private overhead = INITIAL_OVERHEAD;
  private splits = 0;

  constructor(private readonly options: SliceBuilderOptions) {
    this.targetBytes = options.targetBytes ?? DEFAULT_TARGET_BYTES;
    this.capBytes = options.maxBufferedBytes ?? DEFAULT_CAP_FACTOR * this.targetBytes;
    if (!(this.targetBytes > 0) || !(this.capBytes > 0)) {
      throw new RangeError("targetBytes and maxBufferedBytes must be positive");
    }
    this.codec = options.codec ?? "zstd";
    this.sequence = options.firstSequence ?? 0;
  }

  /** Uncompressed bytes waiting for the next slice; never above `maxBufferedBytes` between calls. */
  get bufferedBytes(): number {
    return this.pendingBytes;
  }

  get bufferedDocuments(): number {
    return this.pending.length;
  }

  /** The sequence number the next slice will get. */
  get nextSequence(): number {
    return this.sequence;
  }

  /** The current compressed/uncompressed estimate (1 until a slice has been encoded). */
  get estimatedRatio(): number {
    return this.ratio;
  }

  /** How often an encoded slice came out above the target and was split (the estimate was low). */
  get splitCount(): number {
    return this.splits;
  }

  get maxBufferedBytes(): number {
    return this.capBytes;
  }

  /** Adds one raw BSON document; returns the slices that became full (usually none). */
  add(raw: Uint8Array): Buffer[] {
    checkWholeDocument(raw, this.pending.length);
    const slices: Buffer[] = [];
    if (this.pending.length > 0 && !this.fits(this.pendingBytes + raw.length)) slices.push(...this.cut());
    this.pending.push(raw);
    this.pendingBytes += raw.length;
    // Full by the estimate (or one document bigger than the cap): cut now rather than hold it.
    if (!this.fits(this.pendingBytes)) slices.push(...this.cut());
    return slices;
  }

  /** Cuts whatever is buffered (at the end of a stream, or when a time limit says so). */
  flush(): Buffer[] {
    return this.pending.length > 0 ? this.cut() : [];
  }

  /** Whether `uncompressed` bytes are expected to fit one slice, and within the memory cap. */
  private fits(uncompressed: number): boolean {
    return (
      uncompressed <= this.capBytes && this.overhead + uncompressed * this.ratio <= this.targetBytes * FILL
    );
  }

  private cut(): Buffer[] {
    const documents = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    const slices: Buffer[] = [];
    this.encode(documents, slices, true);
    return slices;
  }

  /** Encodes `documents` as one slice, or splits them in halves until each slice fits. */
  private encode(documents: Uint8Array[], out: Buffer[], learn: boolean): void {
    const slice = encodeSlice(
      {
        kind: this.options.kind,
        deployment: this.options.deployment,
        stream: this.options.stream,
        sequence: this.sequence,
        namespace: this.options.namespace,
        createdAt: this.options.now?.(),
        extra: this.options.extra,
      },
      documents,
      this.codec,
    );
    if (learn) this.learn(slice);
    if (slice.length <= this.targetBytes || documents.length === 1) {
      out.push(slice);
      this.sequence++;
      return;
    }
    this.splits++;
    const middle = splitPoint(documents);
    this.encode(documents.slice(0, middle), out, false);
    this.encode(documents.slice(middle), out, false);
  }

  /** Updates the ratio estimate from a slice made of a whole buffer's worth of documents. */
  private learn(slice: Buffer): void {
    const header = readSliceHeader(slice);
    if (header.uncompressedSize === 0) return;
    this.overhead = slice.length - header.compressedSize;
    const observed = header.compressedSize / header.uncompressedSize;
    // Worse compression is believed at once (so the next slice is not too large); better
    // compression only halfway, since one very compressible slice says little about the next.
    this.ratio = observed >= this.ratio ? observed : (this.ratio + observed) / 2;
  }
}

/** The index that splits `documents` into two non-empty runs of about equal bytes. */
function splitPoint(documents: Uint8Array[]): number {
  const total = documents.reduce((sum, doc) => sum + doc.length, 0);
  let bytes = 0;
  for (let i = 0; i < documents.length - 1; i++) {
    bytes += documents[i].length;
    if (bytes >= total / 2) return i + 1;
  }
  return documents.length - 1;
}

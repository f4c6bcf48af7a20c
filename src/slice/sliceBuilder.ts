import type { Document } from "bson";
import type { Codec } from "./codecs.js";
import { checkWholeDocument } from "./documentChain.js";
import { encodeSliceBody, readSliceHeader, type SliceKind } from "./format.js";

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

/** The smallest buffer a builder allocates; it then doubles as documents arrive, up to the cap. */
const INITIAL_BUFFER_BYTES = 64 * 1024;
const EMPTY = Buffer.alloc(0);

/**
 * Collects the raw BSON documents of one stream and cuts them into slices of at most
 * `targetBytes` compressed. How well the next slice will compress is not known until it is
 * compressed, so the builder keeps an estimate of the compressed/uncompressed ratio: it starts
 * at 1 (no compression, so the first slice cannot come out too large) and learns from every
 * slice it encodes. A slice that still comes out too large is split in halves and re-encoded; a
 * single document larger than the target becomes a slice of its own.
 *
 * Documents are copied, as they arrive, into one buffer of the builder's own: that buffer is the
 * next slice's uncompressed body, so nothing is copied again to encode it, callers may pass views
 * into larger buffers (a driver reply) and reuse them, and the memory held is exactly that buffer:
 * at most `maxBufferedBytes` (or one document, if a single document is larger). The buffer is
 * reused from slice to slice, and let go by flush().
 */
export class SliceBuilder {
  private readonly targetBytes: number;
  private readonly capBytes: number;
  private readonly codec: Codec;
  private sequence: number;
  /** The pending documents back to back, in bytes [0, pendingBytes); the rest is spare room. */
  private body: Buffer = EMPTY;
  private pendingBytes = 0;
  /** Where each pending document starts in `body`. */
  private starts: number[] = [];
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

  /**
   * Bytes of memory the builder holds (its buffer, pending documents and spare room); never above
   * `maxBufferedBytes` between calls.
   */
  get retainedBytes(): number {
    return this.body.length;
  }

  get bufferedDocuments(): number {
    return this.starts.length;
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

  /**
   * Adds (copies) one raw BSON document; returns the slices that became full (usually none).
   * `raw` may be a view into a larger buffer: nothing of it is kept.
   */
  add(raw: Uint8Array): Buffer[] {
    checkWholeDocument(raw, this.starts.length);
    const slices: Buffer[] = [];
    if (this.starts.length > 0 && !this.fits(this.pendingBytes + raw.length)) slices.push(...this.cut());
    this.append(raw);
    // Full by the estimate (or one document bigger than the cap): cut now rather than hold it.
    if (!this.fits(this.pendingBytes)) slices.push(...this.cut());
    return slices;
  }

  /**
   * Cuts whatever is buffered (at the end of a stream, or when a time limit says so), and lets the
   * buffer go: a stream that goes quiet holds no memory.
   */
  flush(): Buffer[] {
    const slices = this.starts.length > 0 ? this.cut() : [];
    this.body = EMPTY;
    return slices;
  }

  /** Whether `uncompressed` bytes are expected to fit one slice, and within the memory cap. */
  private fits(uncompressed: number): boolean {
    return (
      uncompressed <= this.capBytes && this.overhead + uncompressed * this.ratio <= this.targetBytes * FILL
    );
  }

  /** Copies `raw` after the pending documents, growing the buffer (doubling, up to the cap) if needed. */
  private append(raw: Uint8Array): void {
    const needed = this.pendingBytes + raw.length;
    if (needed > this.body.length) {
      const grown = Math.min(Math.max(this.body.length * 2, INITIAL_BUFFER_BYTES), this.capBytes);
      const body = Buffer.allocUnsafeSlow(Math.max(needed, grown));
      this.body.copy(body, 0, 0, this.pendingBytes);
      this.body = body;
    }
    this.body.set(raw, this.pendingBytes);
    this.starts.push(this.pendingBytes);
    this.pendingBytes = needed;
  }

  private cut(): Buffer[] {
    const slices: Buffer[] = [];
    this.encode(0, this.starts.length, slices, true);
    this.starts = [];
    this.pendingBytes = 0;
    // Only a single document larger than the cap makes the buffer larger: do not keep that.
    if (this.body.length > this.capBytes) this.body = EMPTY;
    return slices;
  }

  /** Byte offset in `body` where pending document `index` starts (or where they all end). */
  private offsetOf(index: number): number {
    return index < this.starts.length ? this.starts[index] : this.pendingBytes;
  }

  /** Encodes pending documents [from, to) as one slice, or splits them in halves until each fits. */
  private encode(from: number, to: number, out: Buffer[], learn: boolean): void {
    const slice = encodeSliceBody(
      {
        kind: this.options.kind,
        deployment: this.options.deployment,
        stream: this.options.stream,
        sequence: this.sequence,
        namespace: this.options.namespace,
        createdAt: this.options.now?.(),
        extra: this.options.extra,
      },
      this.body.subarray(this.offsetOf(from), this.offsetOf(to)),
      this.codec,
    );
    if (learn) this.learn(slice);
    if (slice.length <= this.targetBytes || to - from === 1) {
      out.push(slice);
      this.sequence++;
      return;
    }
    this.splits++;
    const middle = this.splitPoint(from, to);
    this.encode(from, middle, out, false);
    this.encode(middle, to, out, false);
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

  /** The index that splits pending documents [from, to) into two non-empty runs of about equal bytes. */
  private splitPoint(from: number, to: number): number {
    const half = (this.offsetOf(from) + this.offsetOf(to)) / 2;
    for (let i = from + 1; i < to - 1; i++) {
      if (this.offsetOf(i) >= half) return i;
    }
    return to - 1;
  }
}

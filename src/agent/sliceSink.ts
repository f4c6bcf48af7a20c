/** A finished slice file on its way to the server. */
export interface OutgoingSlice {
  /** `oplog`, `documents/<db>.<coll>`, `catalog/<db>` or `missing/<requestId>`. */
  stream: string;
  /** Position in the stream: 0, 1, 2... without gaps. */
  sequence: number;
  /** The whole slice file (header and compressed body). */
  bytes: Buffer;
  /** Documents in the slice, for progress. */
  documents: number;
}

/**
 * Where the cloner, the tailer and the missing-document fetcher hand their slices. The uploader
 * sends them to the server; tests collect them.
 */
export interface SliceSink {
  /**
   * Takes the next slice of its stream (a stream's slices are put in sequence order). Resolves once
   * the sink has room for it, which bounds the memory held by slices; rejects if the stream (or
   * the whole sink) failed.
   */
  put(slice: OutgoingSlice): Promise<void>;
  /** Resolves once every slice put on `stream` is acknowledged; rejects with the stream's error. */
  drain(stream: string): Promise<void>;
}

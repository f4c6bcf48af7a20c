/**
 * How many documents go together where a stream of them is handed on in batches: enough that a
 * step per batch costs little next to the documents, few enough to keep memory flat.
 */
export const DOCUMENTS_PER_BATCH = 256;

/** Groups the items of `source` into arrays of `size` (the last one may be shorter). */
export async function* inBatches<T>(source: AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  let batch: T[] = [];
  for await (const item of source) {
    batch.push(item);
    if (batch.length >= size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

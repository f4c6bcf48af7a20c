import type { SliceRecord } from "../catalog/slices.js";
import type { OplogStore } from "../oplogstore/oplogStore.js";
import { decodeSlice } from "../slice/format.js";

/** The documents (raw BSON) of a stored slice, checked against its checksums again. */
export async function readSliceDocuments(store: OplogStore, slice: SliceRecord): Promise<Buffer[]> {
  const decoded = decodeSlice(await store.get(slice.storeKey));
  if (decoded.header.bodySha256.toString("hex") !== slice.sha256)
    throw new Error(
      `slice ${slice.stream}#${slice.sequence} in the oplog store is not the one the catalog recorded`,
    );
  return [...decoded.documents()];
}

import type { SliceRecord } from "../catalog/slices.js";
import type { OplogStore } from "../oplogstore/oplogStore.js";
import { decodeSlice } from "../slice/format.js";

/**
 * The documents (raw BSON) of a stored slice, checked against its checksums again: the store may
 * have damaged it since it was accepted. Errors name the slice and where it is stored.
 */
export async function readSliceDocuments(store: OplogStore, slice: SliceRecord): Promise<Buffer[]> {
  const where = `slice ${slice.stream}#${slice.sequence} (${store.location} ${slice.storeKey})`;
  let decoded: ReturnType<typeof decodeSlice>;
  try {
    decoded = decodeSlice(await store.get(slice.storeKey));
  } catch (error) {
    throw new Error(`${where}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  if (decoded.header.bodySha256.toString("hex") !== slice.sha256)
    throw new Error(`${where} is not the one the catalog recorded (another body SHA-256)`);
  return [...decoded.documents()];
}

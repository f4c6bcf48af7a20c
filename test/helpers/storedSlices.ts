/**
 * Slices put straight into the oplog store and the catalog, as an agent's upload leaves them, for
 * tests of the daemon that need no agent.
 */
import type { Timestamp } from "bson";
import type { Catalog } from "../../src/catalog/index.js";
import type { SliceKind } from "../../src/catalog/slices.js";
import type { OplogStore } from "../../src/oplogstore/oplogStore.js";
import { sliceStoreKey } from "../../src/server/sliceCleanup.js";
import { decodeSlice, encodeSlice } from "../../src/slice/format.js";

export interface StoredSlice {
  deploymentId: string;
  generation: number;
  kind: SliceKind;
  stream: string;
  sequence: number;
  docs: Buffer[];
  /** Header fields beyond the required ones; the catalog row takes its namespace and optimes from them. */
  header?: { namespace?: string; firstTs?: Timestamp; lastTs?: Timestamp };
}

/** Encodes the slice (codec none), stores it under its store key and adds its catalog row. */
export async function putStoredSlice(catalog: Catalog, store: OplogStore, slice: StoredSlice): Promise<void> {
  const { deploymentId, generation, kind, stream, sequence, docs, header: fields = {} } = slice;
  const bytes = encodeSlice({ kind, deployment: deploymentId, stream, sequence, ...fields }, docs, "none");
  const storeKey = sliceStoreKey(deploymentId, generation, stream, sequence);
  await store.put(storeKey, bytes);
  const { header } = decodeSlice(bytes);
  const optime = (t?: Timestamp) => (t ? { t: t.high >>> 0, i: t.low >>> 0 } : null);
  catalog.slices.insert({
    deploymentId,
    generation,
    stream,
    sequence,
    kind,
    namespace: fields.namespace ?? null,
    firstTs: optime(header.firstTs),
    lastTs: optime(header.lastTs),
    lastId: null,
    count: docs.length,
    bytes: bytes.length,
    uncompressedBytes: bytes.length,
    codec: "none",
    sha256: header.bodySha256.toString("hex"),
    storeKey,
    createdAt: Date.now(),
  });
}

import type { DeploymentRecord } from "../catalog/deployments.js";
import { sliceRecordOf, type SliceKind } from "../catalog/slices.js";
import { OplogStoreError } from "../oplogstore/errors.js";
import type { SliceAck } from "../protocol/agentProtocol.js";
import { decodeSlice } from "../slice/format.js";
import { SliceError } from "../slice/errors.js";
import type { ServerContext } from "./context.js";
import { badRequest, conflict, HttpError } from "./errors.js";
import { sliceStoreKey } from "./sliceCleanup.js";

export interface IncomingSlice {
  stream: string;
  sequence: number;
  generation: number;
  body: Buffer;
}

const KIND_OF_STREAM: Array<[prefix: string, kind: SliceKind]> = [
  ["documents/", "documents"],
  ["catalog/", "catalog"],
  ["missing/", "missing"],
  ["oplog", "oplog"],
];

function kindOfStream(stream: string): SliceKind | undefined {
  return KIND_OF_STREAM.find(([prefix]) =>
    prefix === "oplog" ? stream === "oplog" : stream.startsWith(prefix),
  )?.[1];
}

/**
 * Takes one uploaded slice: checks it whole (checksums, that it parses, that its header says what
 * the URL says) before storing anything, stores it durably, then records it in the catalog and
 * only then acknowledges. The same slice sent twice is stored once.
 */
export async function acceptSlice(
  ctx: ServerContext,
  record: DeploymentRecord,
  incoming: IncomingSlice,
): Promise<SliceAck> {
  const { catalog, store } = ctx;
  const { stream, sequence, generation } = incoming;
  if (!Number.isInteger(sequence) || sequence < 0) throw badRequest(`invalid sequence number '${sequence}'`);
  if (generation !== record.generation) {
    throw conflict(
      "STALE_GENERATION",
      `slice for generation ${Number.isNaN(generation) ? "(none)" : generation} but '${record.name}' is at generation ${record.generation}`,
      "the backup was resynced: the agent must fetch its job again",
    );
  }
  if (record.state !== "initial_sync" && record.state !== "active") {
    throw conflict(
      "NOT_RUNNING",
      `the backup of '${record.name}' is ${record.state}; slices are not accepted`,
    );
  }
  const kind = kindOfStream(stream);
  if (!kind)
    throw badRequest(
      `unknown stream '${stream}'`,
      "streams are oplog, documents/<ns>, catalog/<db>, missing/<id>",
    );
  if (!Buffer.isBuffer(incoming.body) || incoming.body.length === 0) {
    throw badRequest("empty slice body", "send the slice file as application/octet-stream");
  }

  let decoded;
  try {
    decoded = decodeSlice(incoming.body);
    for (const _ of decoded.documents()) void _; // walks every document: the count is checked too
  } catch (error) {
    if (error instanceof SliceError)
      throw new HttpError(
        400,
        `SLICE_${error.code}`,
        `slice ${stream}#${sequence} rejected: ${error.message}`,
      );
    throw error;
  }
  const header = decoded.header;
  const mismatch =
    header.deployment !== record.id
      ? "deployment"
      : header.stream !== stream
        ? "stream"
        : Number(header.sequence) !== sequence
          ? "sequence"
          : header.kind !== kind
            ? "kind"
            : undefined;
  if (mismatch) {
    throw badRequest(
      `slice header ${mismatch} does not match the upload URL (stream ${stream}, sequence ${sequence})`,
    );
  }

  const sha256 = header.bodySha256.toString("hex");
  const existing = catalog.slices.get(record.id, generation, stream, sequence);
  if (existing) {
    if (existing.sha256 === sha256) return { stream, sequence, stored: true, duplicate: true };
    throw conflict("SEQUENCE_TAKEN", `a different slice is already stored as ${stream}#${sequence}`);
  }
  if (sequence > 0 && !catalog.slices.get(record.id, generation, stream, sequence - 1)) {
    throw conflict(
      "OUT_OF_ORDER",
      `slice ${stream}#${sequence} arrived before #${sequence - 1}`,
      "upload a stream's slices in order",
    );
  }

  const key = sliceStoreKey(record.id, generation, stream, sequence);
  try {
    await store.put(key, incoming.body);
  } catch (error) {
    if (error instanceof OplogStoreError && error.code === "NO_SPACE") {
      throw new HttpError(
        507,
        "STORE_FULL",
        `the oplog store is full: ${error.message}`,
        "retry later; free space or raise the store's limit",
      );
    }
    if (error instanceof OplogStoreError && error.code === "INVALID_KEY") throw badRequest(error.message);
    if (error instanceof OplogStoreError)
      throw new HttpError(503, "STORE_UNAVAILABLE", error.message, error.hint);
    throw error;
  }
  catalog.slices.insert(
    sliceRecordOf(header, {
      deploymentId: record.id,
      generation,
      storeKey: key,
      bytes: incoming.body.length,
    }),
  );
  if (kind === "missing") catalog.missing.markAnswered(stream.slice("missing/".length));
  return { stream, sequence, stored: true, duplicate: false };
}

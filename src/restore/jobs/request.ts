/**
 * A restore request as the API takes it (`POST /api/v1/restores`), and what a job records of its
 * source. A point in time is `at` (ISO 8601 wall time: every entry of that second) or `atTs`
 * (`seconds:increment`: up to and including that oplog entry).
 */
import { z } from "zod";
import type { OpTimeJson } from "../../protocol/agentProtocol.js";
import type { RestoreTarget } from "../pointInTime/index.js";

const patterns = z.array(z.string().min(1)).optional();

const Delivery = z.discriminatedUnion("kind", [
  z
    .object({
      kind: z.literal("deployment"),
      uri: z.string().regex(/^mongodb(\+srv)?:\/\//, "a mongodb:// or mongodb+srv:// URI"),
      drop: z.boolean().optional(),
      nsInclude: patterns,
      nsExclude: patterns,
      nsFrom: patterns,
      nsTo: patterns,
      parallel: z.number().int().min(1).max(64).optional(),
      verify: z.boolean().optional(),
    })
    .strict()
    .refine((d) => (d.nsFrom?.length ?? 0) === (d.nsTo?.length ?? 0), {
      message: "nsFrom and nsTo go in pairs",
    }),
  z.object({ kind: z.literal("archive"), gzip: z.boolean().optional() }).strict(),
  z.object({ kind: z.literal("stream") }).strict(),
]);
export type DeliveryRequest = z.infer<typeof Delivery>;

const AT_TS = /^(\d+):(\d+)$/;

/** `seconds:increment` → an exact target; undefined if it is not one. */
export function parseAtTs(text: string): OpTimeJson | undefined {
  const match = AT_TS.exec(text.trim());
  if (!match) return undefined;
  const [t, i] = [Number(match[1]), Number(match[2])];
  return t <= 0xffffffff && i <= 0xffffffff ? { t, i } : undefined;
}

/** An ISO 8601 time with a zone → the second it falls in; undefined if it is not one. */
export function parseAt(text: string): number | undefined {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/.test(text.trim()))
    return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : Math.floor(ms / 1000);
}

export const RestoreBody = z
  .object({
    snapshotId: z.string().min(1).optional(),
    deployment: z.string().min(1).optional(),
    at: z
      .string()
      .refine((v) => parseAt(v) !== undefined, "an ISO 8601 time with a zone, e.g. 2026-11-24T10:15:30Z")
      .optional(),
    atTs: z
      .string()
      .refine((v) => parseAtTs(v) !== undefined, "seconds:increment, e.g. 1764000000:3")
      .optional(),
    delivery: Delivery,
  })
  .strict()
  .refine((b) => (b.snapshotId === undefined) !== (b.deployment === undefined), {
    message: "give either snapshotId, or deployment with at or atTs",
  })
  .refine((b) => b.deployment === undefined || (b.at === undefined) !== (b.atTs === undefined), {
    message: "a point in time needs exactly one of at and atTs",
  })
  .refine((b) => b.snapshotId === undefined || (b.at === undefined && b.atTs === undefined), {
    message: "at and atTs go with deployment, not snapshotId",
  });
export type RestoreBody = z.infer<typeof RestoreBody>;

export interface RestoreRequest {
  source: { snapshotId: string } | { deployment: string; target: RestoreTarget };
  delivery: DeliveryRequest;
}

export function restoreRequestOf(body: RestoreBody): RestoreRequest {
  if (body.snapshotId !== undefined)
    return { source: { snapshotId: body.snapshotId }, delivery: body.delivery };
  const target: RestoreTarget =
    body.atTs !== undefined
      ? { kind: "ts", ts: parseAtTs(body.atTs)! }
      : { kind: "second", seconds: parseAt(body.at!)! };
  return { source: { deployment: body.deployment!, target }, delivery: body.delivery };
}

/** What a job records of its source. */
export type RestoreSourceRecord =
  | { kind: "snapshot"; snapshotId: string; deploymentName: string }
  | {
      kind: "pointInTime";
      deploymentId: string;
      deploymentName: string;
      target: RestoreTarget;
      baseSnapshotId: string;
      targetTs: OpTimeJson;
    };

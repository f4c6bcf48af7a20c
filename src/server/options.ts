import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { z } from "zod";

/** Options of `tidemark server`, from the command line or a JSON --config file. */
export const ServerConfig = z.object({
  dataDir: z.string().default("./tidemark-data"),
  host: z.string().default("127.0.0.1"),
  port: z.number().int().min(0).max(65535).default(8080),
  /** "s3://bucket/prefix" or a directory; default: <dataDir>/oplogstore. */
  oplogStore: z.string().optional(),
  s3: z
    .object({
      endpoint: z.string().optional(),
      region: z.string().default("us-east-1"),
      accessKeyId: z.string().optional(),
      secretAccessKey: z.string().optional(),
      forcePathStyle: z.boolean().optional(),
    })
    .default({ region: "us-east-1" }),
  /** Cap on the file-system oplog store's size, in bytes (a full store answers 507). */
  oplogStoreMaxBytes: z.number().positive().optional(),
  /** What the agent is told to use. */
  sliceMb: z.number().positive().default(10),
  oplogFlushSeconds: z.number().positive().default(5),
  /** The point-in-time window: applied oplog slices older than this are removed. */
  oplogRetentionHours: z.number().positive().default(24),
  /** Where snapshots go unless a deployment says otherwise: blockstore, PATH.sqlite, s3://BUCKET/PREFIX or fs:/PATH. */
  snapshotStore: z.string().default("blockstore"),
  /** Snapshot schedule and retention for every deployment (src/snapshot/policy.ts; a deployment may override). */
  snapshotSchedule: z.record(z.string(), z.unknown()).optional(),
  /** Target size of a snapshot block before compression, in bytes. */
  snapshotBlockBytes: z
    .number()
    .int()
    .min(4096)
    .default(1024 * 1024),
  /** Encrypt snapshots with the master key in this file (else TIDEMARK_ENCRYPTION_KEY, else no encryption). */
  encryptionKeyFile: z.string().optional(),
  /** Earlier master keys, so data keys they wrap are re-wrapped under the current one (rotation). */
  previousEncryptionKeyFiles: z.array(z.string()).default([]),
  /** How often groom removes expired snapshots and unreferenced blocks. */
  groomIntervalMinutes: z.number().positive().default(60),
  /** Restore jobs that work at once (materialising a point in time, loading, writing an archive); more wait, queued. */
  restoreJobs: z.number().int().positive().default(2),
  /** How often each snapshot is read back and checked by the integrity job. */
  integrityCheckDays: z.number().positive().default(7),
});
export type ServerConfig = z.infer<typeof ServerConfig>;
export type ServerConfigInput = z.input<typeof ServerConfig>;

/** Reads a --config file; its values are overridden by explicit command-line options. */
export function loadConfigFile(path: string): ServerConfigInput {
  let text: string;
  try {
    text = readFileSync(resolve(path), "utf8");
  } catch (error) {
    throw new Error(`cannot read config file ${path}: ${(error as Error).message}`);
  }
  try {
    return JSON.parse(text) as ServerConfigInput;
  } catch (error) {
    throw new Error(`config file ${path} is not valid JSON: ${(error as Error).message}`);
  }
}

export function parseServerConfig(input: ServerConfigInput): ServerConfig {
  const parsed = ServerConfig.safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (issue) => `${issue.path.join(".") || "(root)"}: ${issue.message}`,
    );
    throw new Error(`invalid server configuration: ${problems.join("; ")}`);
  }
  return parsed.data;
}

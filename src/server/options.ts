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

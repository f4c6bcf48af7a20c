import { Command } from "commander";
import { portNumber, positiveInteger, positiveNumber } from "./parsers.js";
import type { ServerConfigInput } from "../server/options.js";

interface ServerCliOptions {
  dataDir?: string;
  host?: string;
  port?: number;
  config?: string;
  oplogStore?: string;
  s3Endpoint?: string;
  s3Region?: string;
  s3AccessKeyId?: string;
  s3SecretAccessKey?: string;
  s3ForcePathStyle?: boolean;
  oplogStoreMaxGb?: number;
  oplogRetentionHours?: number;
  restoreJobs?: number;
  snapshotStore?: string;
  snapshotIntervalHours?: number;
  encryptionKeyFile?: string;
  previousEncryptionKeyFile?: string[];
}

export function serverCommand(): Command {
  return new Command("server")
    .description("Run the Tidemark server: HTTP API, catalog and oplog store in the data directory")
    .option(
      "--data-dir <dir>",
      "where the catalog and the file-system oplog store live (default ./tidemark-data)",
    )
    .option("--host <host>", "interface to listen on (default 127.0.0.1)")
    .option("--port <port>", "HTTP port (default 8080; 0 picks a free one)", portNumber)
    .option("--config <file>", "JSON file with these settings (command-line options win)")
    .option(
      "--oplog-store <url>",
      "s3://BUCKET/PREFIX for an S3-compatible store (default: <data-dir>/oplogstore)",
    )
    .option("--s3-endpoint <url>", "S3 endpoint, e.g. http://127.0.0.1:9000 (default: AWS)")
    .option("--s3-region <region>", "S3 region (default us-east-1)")
    .option("--s3-access-key-id <id>", "S3 access key id (default: AWS_ACCESS_KEY_ID)")
    .option("--s3-secret-access-key <key>", "S3 secret key (default: AWS_SECRET_ACCESS_KEY)")
    .option("--s3-force-path-style", "path-style S3 URLs (most S3-compatible servers need this)")
    .option(
      "--oplog-store-max-gb <gb>",
      "cap on the file-system oplog store; when full, uploads get 507 and agents retry",
      positiveNumber,
    )
    .option(
      "--oplog-retention-hours <hours>",
      "point-in-time window: applied oplog slices older than this are removed (default 24)",
      positiveNumber,
    )
    .option(
      "--restore-jobs <n>",
      "restore jobs that work at once (materialising, loading, writing archives); more wait queued (default 2)",
      positiveInteger,
    )
    .option(
      "--snapshot-store <spec>",
      "where snapshots go: blockstore (default, <data-dir>/blockstore.sqlite), PATH.sqlite, s3://BUCKET/PREFIX or fs:/PATH",
    )
    .option(
      "--snapshot-interval-hours <hours>",
      "take a scheduled snapshot this often (default 6)",
      positiveNumber,
    )
    .option(
      "--encryption-key-file <file>",
      "encrypt snapshots (AES-256-GCM) with the 32-byte master key in this file (hex or base64); or set TIDEMARK_ENCRYPTION_KEY",
    )
    .option(
      "--previous-encryption-key-file <file>",
      "a master key being rotated out: data keys it wraps are re-wrapped under the current one (repeatable)",
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .addHelpText(
      "after",
      `
The admin key: set TIDEMARK_ADMIN_KEY on the first start, or the first start generates one and
prints it once. Use it as TIDEMARK_API_KEY for the other commands.

Examples:
  $ tidemark server --data-dir /var/lib/tidemark --port 8080
  $ tidemark server --oplog-store s3://backups/tidemark --s3-endpoint http://127.0.0.1:9000 --s3-force-path-style
  $ tidemark server --snapshot-store fs:/backups/snapshots --encryption-key-file /etc/tidemark/master.key`,
    )
    .action(async (opts: ServerCliOptions) => {
      // Loaded when run, not by main.ts: every command would pay for the server's modules.
      const { loadConfigFile } = await import("../server/options.js");
      const { startServer } = await import("../server/server.js");
      const fromFile: ServerConfigInput = opts.config ? loadConfigFile(opts.config) : {};
      const s3 = { ...(fromFile.s3 ?? {}) };
      if (opts.s3Endpoint) s3.endpoint = opts.s3Endpoint;
      if (opts.s3Region) s3.region = opts.s3Region;
      if (opts.s3AccessKeyId) s3.accessKeyId = opts.s3AccessKeyId;
      if (opts.s3SecretAccessKey) s3.secretAccessKey = opts.s3SecretAccessKey;
      if (opts.s3ForcePathStyle) s3.forcePathStyle = true;
      const server = await startServer({
        ...fromFile,
        ...(opts.dataDir ? { dataDir: opts.dataDir } : {}),
        ...(opts.host ? { host: opts.host } : {}),
        ...(opts.port !== undefined ? { port: opts.port } : {}),
        ...(opts.oplogStore ? { oplogStore: opts.oplogStore } : {}),
        ...(opts.oplogStoreMaxGb ? { oplogStoreMaxBytes: Math.floor(opts.oplogStoreMaxGb * 1024 ** 3) } : {}),
        ...(opts.oplogRetentionHours ? { oplogRetentionHours: opts.oplogRetentionHours } : {}),
        ...(opts.restoreJobs ? { restoreJobs: opts.restoreJobs } : {}),
        ...(opts.snapshotStore ? { snapshotStore: opts.snapshotStore } : {}),
        ...(opts.snapshotIntervalHours
          ? {
              snapshotSchedule: {
                ...(fromFile.snapshotSchedule ?? {}),
                intervalHours: opts.snapshotIntervalHours,
              },
            }
          : {}),
        ...(opts.encryptionKeyFile ? { encryptionKeyFile: opts.encryptionKeyFile } : {}),
        ...(opts.previousEncryptionKeyFile
          ? { previousEncryptionKeyFiles: opts.previousEncryptionKeyFile }
          : {}),
        s3,
      });
      if (server.generatedAdminKey) {
        process.stdout.write(
          `admin key (shown once; the server keeps only its hash): ${server.generatedAdminKey}\n` +
            `  export TIDEMARK_URL=${server.url} TIDEMARK_API_KEY=${server.generatedAdminKey}\n`,
        );
      }
      process.stdout.write(`tidemark server ready: ${server.url}\n`);
      const stop = () => void server.stop().then(() => process.exit(0));
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
}

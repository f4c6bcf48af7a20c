import { Command, InvalidArgumentError, Option } from "commander";
import { positiveInteger, positiveNumber } from "./parsers.js";
import { startAgent } from "../agent/agent.js";
import { ConfigurationError, EXIT_BAD_CONFIGURATION } from "../agent/errors.js";
import { CODECS, isCodec, type Codec } from "../slice/codecs.js";

function codec(value: string): Codec {
  if (!isCodec(value)) throw new InvalidArgumentError(`expected one of ${CODECS.join(", ")}`);
  return value;
}

function serverUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError("expected a URL such as http://backup.example.com:8080");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new InvalidArgumentError("expected an http(s) URL");
  return value;
}

interface AgentCliOptions {
  server: string;
  key: string;
  source: string;
  deployment?: string;
  sliceMb?: number;
  codec: Codec;
  cloneParallelism: number;
  oplogFlushSeconds?: number;
  tls?: boolean;
  tlsCaFile?: string;
  tlsCertificateKeyFile?: string;
  tlsAllowInvalidCertificates?: boolean;
  verbose?: boolean;
}

export function agentCommand(): Command {
  return new Command("agent")
    .description(
      "Run the backup agent next to a replica set: initial sync (clone + oplog tail), continuous oplog " +
        "slices, missing documents, as the server's job says",
    )
    .addOption(
      new Option("--server <url>", "the Tidemark server")
        .env("TIDEMARK_SERVER")
        .argParser(serverUrl)
        .makeOptionMandatory(),
    )
    .addOption(
      new Option("--key <agentKey>", "the deployment's agent key (printed when it was added)")
        .env("TIDEMARK_AGENT_KEY")
        .makeOptionMandatory(),
    )
    .addOption(
      new Option("--source <mongodbUri>", "connection string of the replica set to back up")
        .env("TIDEMARK_SOURCE_URI")
        .makeOptionMandatory(),
    )
    .option("--deployment <id>", "the deployment's id (default: looked up with the key)")
    .option(
      "--slice-mb <mb>",
      "largest slice, compressed (default: the server's setting, 10)",
      positiveNumber,
    )
    .option("--codec <codec>", `slice compression: ${CODECS.join(" | ")}`, codec, "zstd")
    .option("--clone-parallelism <n>", "collections cloned at once", positiveInteger, 4)
    .option(
      "--oplog-flush-seconds <s>",
      "close an oplog slice this long after its first entry (default: the server's setting, 5)",
      positiveNumber,
    )
    .option("--tls", "connect to the replica set with TLS")
    .option("--tls-ca-file <path>", "CA certificates (PEM) to check the servers' certificates with")
    .option("--tls-certificate-key-file <path>", "client certificate and key (PEM)")
    .option("--tls-allow-invalid-certificates", "do not check the servers' certificates (insecure)")
    .option("--verbose", "log every acknowledged slice")
    .addHelpText(
      "after",
      `
The key and the connection string can come from TIDEMARK_AGENT_KEY and TIDEMARK_SOURCE_URI instead,
which keeps them out of the process list. Passwords are never logged.

Exit codes: 0 when the backup is terminated (or on SIGINT/SIGTERM), 2 when the configuration
cannot work (unreachable source, authentication failed, not a replica set, missing privilege,
refused agent key), 1 on any other error.

Examples:
  $ tidemark agent --server http://backup:8080 --key tdm_agent_... \\
      --source "mongodb://backup:pw@db1:27017,db2:27017/?replicaSet=rs0"
  $ TIDEMARK_AGENT_KEY=tdm_agent_... tidemark agent --server https://backup.example.com \\
      --source "mongodb+srv://backup:pw@cluster.example.com/" --tls-ca-file ca.pem
  $ tidemark agent --server http://127.0.0.1:8080 --key tdm_agent_... \\
      --source "mongodb://127.0.0.1:27017/?replicaSet=rs0" --slice-mb 4 --codec snappy --clone-parallelism 8`,
    )
    .action(async (opts: AgentCliOptions) => {
      const agent = startAgent({
        serverUrl: opts.server,
        agentKey: opts.key,
        deploymentId: opts.deployment,
        sourceUri: opts.source,
        tls: {
          tls: opts.tls,
          tlsCAFile: opts.tlsCaFile,
          tlsCertificateKeyFile: opts.tlsCertificateKeyFile,
          tlsAllowInvalidCertificates: opts.tlsAllowInvalidCertificates,
        },
        sliceMb: opts.sliceMb,
        codec: opts.codec,
        cloneParallelism: opts.cloneParallelism,
        oplogFlushSeconds: opts.oplogFlushSeconds,
        logLevel: opts.verbose ? "debug" : "info",
      });
      const stop = () => void agent.stop();
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
      try {
        await agent.done;
        process.exitCode = 0;
      } catch (error) {
        if (error instanceof ConfigurationError) {
          process.stderr.write(`tidemark agent: ${error.describe()}\n`);
          process.exit(EXIT_BAD_CONFIGURATION);
        }
        process.stderr.write(`tidemark agent: ${error instanceof Error ? error.message : String(error)}\n`);
        process.exit(1);
      } finally {
        process.off("SIGINT", stop);
        process.off("SIGTERM", stop);
      }
    });
}

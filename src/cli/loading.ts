import { MultiBar, Presets } from "cli-progress";
import { Option, type Command } from "commander";
import {
  RestoreInterruptedError,
  SourceReadError,
  TargetConnectionError,
  TargetNamespacesExistError,
} from "../restore/loader/errors.js";
import type { LoadProgress, LoadResult } from "../restore/loader/index.js";
import { CliError } from "./apiClient.js";
import { formatBytes } from "./output.js";
import { positiveInteger } from "./parsers.js";
import { printJson } from "./output.js";

/** Exit code of `restore` and `import` when nothing (or not all) was loaded. */
export const EXIT_NOT_LOADED = 2;

/** At most this many namespaces are spelled out as --ns-include options in the rerun hint. */
const MAX_INCLUDES_IN_HINT = 5;

/**
 * A loader error as `restore` and `import` say it. `existsHint` is the command's way around
 * namespaces that exist already; `what` names the load in the generic message. With `json`, an
 * interrupted load is also printed on stdout as `{error, code, completed, incomplete, hint}`, for
 * a program driving the command (stdout holds the result when there is one).
 */
export function loadFailure(
  error: unknown,
  what: string,
  existsHint: string,
  { json = false }: { json?: boolean } = {},
): CliError {
  if (error instanceof RestoreInterruptedError) {
    const failure = interruptedFailure(error, what);
    if (json)
      printJson({
        error: failure.message.split("\n")[0],
        code: error.code,
        completed: error.completed,
        incomplete: error.incomplete,
        hint: failure.hint,
      });
    return failure;
  }
  if (error instanceof CliError) return error;
  if (error instanceof TargetNamespacesExistError)
    return new CliError(error.message, existsHint, EXIT_NOT_LOADED);
  if (error instanceof TargetConnectionError)
    return new CliError(
      error.message,
      "check the --to URI, the network and the credentials",
      EXIT_NOT_LOADED,
    );
  return new CliError(
    `${what} failed: ${(error as Error).message}`,
    "rerun with --drop once the cause is fixed",
    EXIT_NOT_LOADED,
  );
}

/** A bar per collection being loaded (restore, import), on a terminal only; nothing otherwise. */
export function collectionProgressBars(): { onProgress?: (p: LoadProgress) => void; stop(): void } {
  if (!process.stderr.isTTY) return { stop() {} };
  const bars = new MultiBar(
    { format: "{namespace} {bar} {value}/{total} documents", stream: process.stderr, clearOnComplete: false },
    Presets.shades_classic,
  );
  const byNamespace = new Map<string, ReturnType<MultiBar["create"]>>();
  return {
    onProgress(p) {
      let bar = byNamespace.get(p.namespace);
      if (!bar) {
        bar = bars.create(p.totalDocuments ?? 0, 0, { namespace: p.namespace });
        byNamespace.set(p.namespace, bar);
      }
      // A dump does not say how many documents it holds: the total follows what was read.
      if (p.documents > bar.getTotal()) bar.setTotal(p.documents);
      bar.update(p.documents, { namespace: p.namespace });
    },
    stop: () => bars.stop(),
  };
}

/**
 * What stopped the load, then the namespaces that are complete and those that are not, and how to
 * finish: the cause's own advice first (a damaged snapshot cannot be loaded again as it is), then
 * a rerun with --drop, which may be narrowed to the incomplete namespaces.
 */
function interruptedFailure(error: RestoreInterruptedError, what: string): CliError {
  const cause = error.cause;
  // The CLI's own source errors (a damaged snapshot block, a cut download) say it best themselves.
  const said = cause instanceof SourceReadError && cause.cause instanceof CliError ? cause.cause : undefined;
  const reason = said?.message ?? (cause instanceof Error ? cause.message : String(cause));
  const list = (namespaces: string[]) => (namespaces.length === 0 ? "none" : namespaces.join(", "));
  const sources = error.incompleteSources;
  const includes =
    sources.length > 0 && sources.length <= MAX_INCLUDES_IN_HINT
      ? `: ${sources.map((ns) => `--ns-include ${shellQuoted(ns)}`).join(" ")}`
      : "";
  const rerun =
    error.incomplete.length === 0
      ? "every namespace was loaded and only the check after failed: rerun with --drop to load and check again"
      : `rerun with --drop (optionally --ns-include for the incomplete ones${includes})`;
  return new CliError(
    `${what} stopped: ${reason}\ncomplete: ${list(error.completed)}\nnot complete: ${list(error.incomplete)}`,
    said?.hint ? `${said.hint}; ${rerun}` : rerun,
    EXIT_NOT_LOADED,
  );
}

/** `text` as one POSIX shell word, to paste into the rerun. */
function shellQuoted(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** Gathers a repeatable option's values. */
export const collect = (value: string, previous: string[] = []) => [...previous, value];

/** What `restore` and `import` take alike; `verb` names the command in the help ("restore"). */
export function addLoadOptions(command: Command, verb: string): Command {
  return command
    .option(
      "--drop",
      `drop target collections that exist (otherwise the ${verb} refuses before writing)`,
      false,
    )
    .option(
      "--ns-include <pattern>",
      `${verb} only matching namespaces, e.g. 'shop.*' (repeatable)`,
      collect,
      [],
    )
    .option("--ns-exclude <pattern>", "skip matching namespaces (repeatable)", collect, [])
    .option("--parallel <n>", "collections loaded at once", positiveInteger, 4)
    .addOption(new Option("--no-verify", "skip the dbHash comparison at the end"))
    .option("--json", "print the result as JSON", false);
}

/**
 * The result table of a load: a row per collection with what became of it (`unverified` says
 * why a loaded collection was not compared), as `restore` and `import` print it.
 */
export function loadResultRows(
  result: LoadResult,
  unverified: (namespace: string) => string | undefined,
): string[][] {
  const rows = [["COLLECTION", "RESULT", "DOCUMENTS", "BYTES", "INDEXES"]];
  const verified = new Map(result.verification.map((v) => [v.namespace, v.match]));
  for (const c of result.collections) {
    const check = verified.get(c.namespace);
    const status =
      c.status === "skipped"
        ? `skipped: ${c.message ?? ""}`
        : check === undefined
          ? (unverified(c.namespace) ?? c.type)
          : check
            ? "match"
            : "MISMATCH";
    rows.push([c.namespace, status, String(c.documents), formatBytes(c.bytes), String(c.indexes.length)]);
  }
  return rows;
}

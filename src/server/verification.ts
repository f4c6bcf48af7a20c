/**
 * `tidemark headdb verify`: the head database compared with the deployment, collection by
 * collection, by dbHash. The agent hashes the deployment when no write reaches its oplog and
 * reports the newest oplog ts with it (`asOf`); once the head database has applied `asOf`, the
 * server hashes the head database and compares. Evaluation happens when the verification is read
 * (the CLI polls it), so nothing runs for verifications nobody looks at.
 */
import { deserialize, Timestamp } from "bson";
import type { DeploymentRecord } from "../catalog/deployments.js";
import type {
  CollectionComparison,
  VerificationRecord,
  VerificationResult,
  VerificationState,
} from "../catalog/verifications.js";
import { compareOpTimes, formatOpTime, opTimeOf } from "../protocol/optime.js";
import { readSliceDocuments } from "../daemon/sliceReader.js";
import type { HeadDatabase } from "../headdb/headDatabase.js";
import type { DatabaseHashes, OpTimeJson, VerificationAnswer } from "../protocol/agentProtocol.js";
import { isBackedUp } from "../protocol/namespaces.js";
import type { ServerContext } from "./context.js";
import { conflict, notFound } from "./errors.js";

/** A request the agent has not answered by then is dropped from its job and fails. */
export const AGENT_ANSWER_TIMEOUT_MS = 10 * 60_000;

/** A verification as the API and the CLI (`--json`) show it. */
export interface VerificationView {
  id: string;
  deploymentId: string;
  deployment: string;
  createdAt: string;
  state: VerificationState;
  /** The deployment's newest oplog ts when the agent hashed it (null before its answer). */
  asOf: OpTimeJson | null;
  /** The head database's applied optime: when it was hashed once done, else now. */
  headAppliedTs: OpTimeJson | null;
  /** Every collection on either side, by database then name. */
  collections: CollectionComparison[];
  /** True only when done and every collection matches. */
  match: boolean;
  warnings: string[];
  error?: string;
  hint?: string;
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** Collection by collection; one present on a single side is a mismatch with a null hash. */
export function compareHashes(deployment: DatabaseHashes, head: DatabaseHashes): CollectionComparison[] {
  const comparisons: CollectionComparison[] = [];
  const databases = new Set([...Object.keys(deployment), ...Object.keys(head)]);
  for (const db of [...databases].sort(byteOrder)) {
    const ours = deployment[db]?.collections ?? {};
    const theirs = head[db]?.collections ?? {};
    const names = new Set([...Object.keys(ours), ...Object.keys(theirs)]);
    for (const collection of [...names].sort(byteOrder)) {
      const left = ours[collection] ?? null;
      const right = theirs[collection] ?? null;
      comparisons.push({
        db,
        collection,
        deployment: left,
        head: right,
        match: left !== null && left === right,
      });
    }
  }
  return comparisons;
}

/**
 * The head database's dbHash of `databases` and of every database it holds besides (one the
 * deployment no longer has is a mismatch too), restricted to what the agent backs up.
 */
export function hashHeadDatabase(head: HeadDatabase, databases: string[]): DatabaseHashes {
  const hashes: DatabaseHashes = {};
  const names = new Set([...databases, ...head.catalog.databases()]);
  for (const db of [...names].filter((name) => isBackedUp(name)).sort(byteOrder)) {
    const collections = head.dbHash(db).collections;
    hashes[db] = {
      collections: Object.fromEntries(
        Object.entries(collections).filter(([collection]) => isBackedUp(db, collection)),
      ),
    };
  }
  return hashes;
}

function answerHint(error: string): string {
  return error.startsWith("writes did not stop")
    ? "stop the writes to the deployment (the agent hashes it while its oplog is quiet), then verify again"
    : "see the agent's log";
}

export class Verifications {
  /** Comparisons under way, so concurrent reads of one verification hash the head database once. */
  private readonly comparing = new Map<string, Promise<void>>();

  constructor(private readonly ctx: ServerContext) {}

  /** A new verification of `record`: it must be active, with a head database to compare. */
  start(record: DeploymentRecord): VerificationRecord {
    if (!this.ctx.daemon) {
      throw conflict(
        "NO_DAEMON",
        "this server runs without the backup daemon, so there is no head database to verify",
        "start the server with the daemon (the default)",
      );
    }
    if (record.state !== "active") {
      throw conflict(
        "NOT_ACTIVE",
        `the backup of '${record.name}' is ${record.state}${record.phase ? ` (phase ${record.phase})` : ""}, not active`,
        record.state === "initial_sync"
          ? `verify once the initial sync is complete: tidemark deployments show ${record.name}`
          : `start the backup first: tidemark backup start ${record.name}`,
      );
    }
    const verification = this.ctx.catalog.verifications.create(record.id, record.generation);
    this.ctx.log(`${record.name}: verification ${verification.id} requested`);
    return verification;
  }

  /** Stores the agent's answer; false when one was stored already (the first stands). */
  answer(record: DeploymentRecord, id: string, answer: VerificationAnswer): boolean {
    const { verifications } = this.ctx.catalog;
    const verification = this.find(record, id);
    if (verification.generation !== record.generation) {
      throw conflict(
        "GENERATION_CHANGED",
        `verification ${id} belongs to generation ${verification.generation}, the job is at ${record.generation}`,
      );
    }
    if (verification.state !== "waiting_for_agent") {
      if (verification.answer) return false;
      throw conflict(
        "NOT_WAITING",
        `verification ${id} is ${verification.state}${verification.result?.error ? `: ${verification.result.error}` : ""}`,
      );
    }
    if (!verifications.recordAnswer(id, answer, "waiting_for_head")) return false;
    if ("error" in answer) {
      verifications.finish(id, "failed", this.failure(answer.error, answerHint(answer.error)));
      this.ctx.log(`${record.name}: verification ${id} failed: ${answer.error}`);
    }
    return true;
  }

  /** The verification, advanced as far as it can go now. */
  async view(record: DeploymentRecord, id: string): Promise<VerificationView> {
    let verification = this.find(record, id);
    if (verification.state === "waiting_for_agent" || verification.state === "waiting_for_head") {
      verification = await this.advance(record, verification);
    }
    const answer = verification.answer && "asOf" in verification.answer ? verification.answer : undefined;
    const result = verification.result;
    const view: VerificationView = {
      id: verification.id,
      deploymentId: record.id,
      deployment: record.name,
      createdAt: new Date(verification.createdAt).toISOString(),
      state: verification.state,
      asOf: answer?.asOf ?? null,
      headAppliedTs: result ? result.headAppliedTs : (this.ctx.daemon?.status(record.id)?.appliedTs ?? null),
      collections: result?.collections ?? [],
      match: verification.state === "done" && (result?.match ?? false),
      warnings: result?.warnings ?? [],
    };
    if (result?.error) view.error = result.error;
    if (result?.hint) view.hint = result.hint;
    return view;
  }

  private find(record: DeploymentRecord, id: string): VerificationRecord {
    const verification = this.ctx.catalog.verifications.get(id);
    if (!verification || verification.deploymentId !== record.id) {
      throw notFound(`verification '${id}' of deployment '${record.name}'`);
    }
    return verification;
  }

  private failure(error: string, hint: string): VerificationResult {
    return { headAppliedTs: null, collections: [], match: false, warnings: [], error, hint };
  }

  private async advance(
    record: DeploymentRecord,
    verification: VerificationRecord,
  ): Promise<VerificationRecord> {
    const { verifications } = this.ctx.catalog;
    const failed = this.whyItCannotFinish(record, verification);
    if (failed) {
      verifications.finish(verification.id, "failed", failed);
      this.ctx.log(`${record.name}: verification ${verification.id} failed: ${failed.error}`);
    } else if (verification.state === "waiting_for_head") {
      let comparing = this.comparing.get(verification.id);
      if (!comparing) {
        comparing = this.compare(record, verification).finally(() => this.comparing.delete(verification.id));
        this.comparing.set(verification.id, comparing);
      }
      await comparing;
    }
    return verifications.get(verification.id)!;
  }

  private whyItCannotFinish(
    record: DeploymentRecord,
    verification: VerificationRecord,
  ): VerificationResult | undefined {
    if (record.generation !== verification.generation) {
      return this.failure(
        `the backup was resynced (generation ${verification.generation} → ${record.generation}) before the verification finished`,
        `verify again once it is active: tidemark deployments show ${record.name}`,
      );
    }
    if (record.state !== "active") {
      return this.failure(
        `the backup of '${record.name}' is ${record.state}, no longer active`,
        record.state === "stopped"
          ? `start it (tidemark backup start ${record.name}) and verify again`
          : `see: tidemark deployments show ${record.name}`,
      );
    }
    if (
      verification.state === "waiting_for_agent" &&
      Date.now() - verification.createdAt > AGENT_ANSWER_TIMEOUT_MS
    ) {
      return this.failure(
        `the agent did not answer within ${AGENT_ANSWER_TIMEOUT_MS / 60_000} minutes`,
        `is the agent running? tidemark deployments show ${record.name} says when it was last seen`,
      );
    }
    const daemonError = this.ctx.daemon?.status(record.id)?.error;
    if (verification.state === "waiting_for_head" && daemonError) {
      return this.failure(
        `the backup daemon stopped applying for this deployment: ${daemonError}`,
        "see the server log; the head database is not updated until the cause is fixed and the server restarted",
      );
    }
    return undefined;
  }

  /** Hashes the head database once it has applied asOf, and stores the comparison. */
  private async compare(record: DeploymentRecord, verification: VerificationRecord): Promise<void> {
    const answer = verification.answer;
    const head = this.ctx.daemon?.headDatabase(record.id);
    if (!head || !answer || !("asOf" in answer)) return;
    // The applied optime and the hashes are read in one synchronous stretch: the daemon's
    // transactions run on this thread too, so none lands in between.
    const applied = opTimeOf(head.state.appliedOptime());
    if (!applied || compareOpTimes(applied, answer.asOf) < 0) return;
    const collections = compareHashes(
      answer.databases,
      hashHeadDatabase(head, Object.keys(answer.databases)),
    );
    const warnings: string[] = [];
    if (compareOpTimes(applied, answer.asOf) > 0) {
      const warning = await this.writesBetween(verification, answer.asOf, applied);
      if (warning) warnings.push(warning);
    }
    const match = collections.every((c) => c.match);
    this.ctx.catalog.verifications.finish(verification.id, "done", {
      headAppliedTs: applied,
      collections,
      match,
      warnings,
    });
    const mismatches = collections.filter((c) => !c.match).length;
    this.ctx.log(
      `${record.name}: verification ${verification.id} at ${formatOpTime(answer.asOf)}: ` +
        (match ? `all ${collections.length} collections match` : `${mismatches} collections MISMATCH`),
    );
  }

  /**
   * A warning when oplog entries that change data lie in (from, to]: the head database had
   * applied them when it was hashed, the deployment's hash came before them. No-ops are left out.
   */
  private async writesBetween(
    verification: VerificationRecord,
    from: OpTimeJson,
    to: OpTimeJson,
  ): Promise<string | undefined> {
    const range = `between asOf ${formatOpTime(from)} and the head's applied optime ${formatOpTime(to)}`;
    const slices = this.ctx.catalog.slices
      .list(verification.deploymentId, verification.generation, "oplog")
      .filter(
        (slice) =>
          slice.firstTs &&
          slice.lastTs &&
          compareOpTimes(slice.lastTs, from) > 0 &&
          compareOpTimes(slice.firstTs, to) <= 0,
      );
    let writes = 0;
    let first: string | undefined;
    try {
      for (const slice of slices) {
        for (const raw of await readSliceDocuments(this.ctx.store, slice)) {
          const entry = deserialize(raw);
          if (!(entry.ts instanceof Timestamp)) continue;
          const ts = { t: entry.ts.high >>> 0, i: entry.ts.low >>> 0 };
          if (compareOpTimes(ts, from) <= 0 || compareOpTimes(ts, to) > 0 || entry.op === "n") continue;
          writes++;
          first ??= `op '${String(entry.op)}' on ${String(entry.ns)} at ${formatOpTime(ts)}`;
        }
      }
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      return `the head database was hashed with oplog entries ${range} applied, which could not be read to check for writes (${reason}); a mismatch may come from writes after the agent's hash`;
    }
    if (writes === 0) return undefined;
    return `writes continued after the agent's hash: ${writes} oplog entries ${range} change data (the first: ${first}), so a mismatch may come from them; stop the writes and verify again`;
  }
}

/**
 * One deployment's share of the daemon: its head database and the phases after the clone
 * (DESIGN.md "Initial sync"): building → applying_oplogs → fetching_missing_documents →
 * creating_indexes → complete, then continuous backup. Every step that changes the head database
 * stores the slice cursor and phase state in the same transaction, so a restart resumes exactly.
 */
import { rmSync } from "node:fs";
import { EJSON, UUID } from "bson";
import type { Catalog } from "../catalog/index.js";
import type { DeploymentRecord } from "../catalog/deployments.js";
import type { SliceRecord } from "../catalog/slices.js";
import { deserializeExact, HeadDatabase, idKeyOf } from "../headdb/index.js";
import { compareOpTimes, opTimeOf } from "../protocol/optime.js";
import { OplogApplier } from "../oplog/apply/index.js";
import type { OplogStore } from "../oplogstore/oplogStore.js";
import {
  OPLOG_STREAM,
  streamForCatalog,
  streamForCollection,
  streamForMissing,
  type OpTimeJson,
} from "../protocol/agentProtocol.js";
import { decodePhaseState, encodePhaseState, type MissingFetch, type PhaseState } from "./phaseState.js";
import { readSliceDocuments } from "./sliceReader.js";

export interface HeadStatus {
  appliedTs: OpTimeJson | null;
  /** Documents slices inserted, oplog slices applied. */
  documentsSlicesInserted: number;
  oplogSlicesApplied: number;
  /** `_id`s still missing, and how many were asked of the agent so far. */
  missing: number;
  missingAsked: number;
  /** Indexes in the head catalog, and how many creating_indexes recorded (null before). */
  indexesInCatalog: number;
  indexes: number | null;
  error: string | null;
}

export interface DeploymentWorkerOptions {
  deploymentId: string;
  /** The head database's directory. */
  path: string;
  catalog: Catalog;
  store: OplogStore;
  log: (line: string) => void;
  /** True once the daemon is stopping: long loops end early (their progress is saved). */
  stopping: () => boolean;
  /**
   * Pauses after every head database transaction and after every phase change. Only the crash
   * tests set them (the TIDEMARK_FAULT_DAEMON_DELAY_MS and ..._PHASE_DELAY_MS faults), so that
   * each phase, even one that is a single step, lasts long enough to be killed in.
   */
  delayMs?: number;
  phaseDelayMs?: number;
}

/** How many bytes of documents one building transaction inserts at most. */
const INSERT_PART_BYTES = 8 * 1024 * 1024;

/** `docs` cut into consecutive parts of at most `maxBytes` (at least one document each). */
export function partsOf(docs: Buffer[], maxBytes: number): Buffer[][] {
  const parts: Buffer[][] = [[]];
  let bytes = 0;
  for (const doc of docs) {
    const current = parts[parts.length - 1];
    if (current.length > 0 && bytes + doc.length > maxBytes) {
      parts.push([doc]);
      bytes = doc.length;
    } else {
      current.push(doc);
      bytes += doc.length;
    }
  }
  return parts;
}

export class DeploymentWorker {
  private head: HeadDatabase;
  private applier: OplogApplier;
  private readonly deploymentId: string;
  /** The head database's directory. */
  readonly path: string;
  private readonly catalog: Catalog;
  private readonly store: OplogStore;
  private readonly log: (line: string) => void;
  /** Set when a step failed: the deployment's work stops for that generation (see Daemon.tick). */
  failure?: { generation: number; message: string };
  /** Steps end early past this time (Date.now()); their progress is saved. */
  private deadline = Infinity;
  /** True while a resync replaces the head database (it is closed meanwhile). */
  private resetting = false;

  constructor(private readonly options: DeploymentWorkerOptions) {
    ({
      deploymentId: this.deploymentId,
      path: this.path,
      catalog: this.catalog,
      store: this.store,
      log: this.log,
    } = options);
    this.head = HeadDatabase.open({ path: this.path });
    this.applier = new OplogApplier(this.head);
  }

  /** True once the daemon stops or this step's budget is spent. */
  private outOfTime(): boolean {
    return this.options.stopping() || Date.now() > this.deadline;
  }

  /** Holds the worker between transactions when a delay fault is set. */
  private async pause(ms = this.options.delayMs ?? 0): Promise<void> {
    if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
  }

  /** False while a resync replaces the head database: read nothing from it then. */
  get available(): boolean {
    return !this.resetting;
  }

  /** The head database (for verification and tests: read it, never write to it). */
  get headDatabase(): HeadDatabase {
    return this.head;
  }

  async close(): Promise<void> {
    await this.head.close();
  }

  /** The generation the head database belongs to (undefined before the first step). */
  get generation(): number | undefined {
    return this.state?.generation;
  }

  private get state(): PhaseState | undefined {
    return decodePhaseState(this.head.state.phaseState());
  }

  status(): HeadStatus {
    let documentsSlicesInserted = 0;
    for (const [stream, sequence] of this.head.state.sliceCursors())
      if (stream.startsWith("documents/")) documentsSlicesInserted += sequence + 1;
    const state = this.state;
    return {
      appliedTs: opTimeOf(this.head.state.appliedOptime()),
      documentsSlicesInserted,
      oplogSlicesApplied: (this.head.state.sliceCursor(OPLOG_STREAM) ?? -1) + 1,
      missing: this.head.missing.count(),
      missingAsked: state?.missingAsked ?? 0,
      indexesInCatalog: this.head.catalog.collections().reduce((n, c) => n + c.indexes.length, 0),
      indexes: state?.indexes ?? null,
      error: this.failure?.message ?? null,
    };
  }

  /** Advances as far as the stored slices allow. */
  async step(record: DeploymentRecord, deadline = Infinity): Promise<void> {
    this.deadline = deadline;
    let state = this.state;
    if (state && state.generation !== record.generation) {
      // A resync: this head database belongs to an older generation; start it afresh.
      this.resetting = true;
      await this.head.close();
      rmSync(this.path, { recursive: true, force: true });
      this.head = HeadDatabase.open({ path: this.path });
      this.resetting = false;
      this.applier = new OplogApplier(this.head);
      state = undefined;
    }
    if (!state) state = await this.save(record, { generation: record.generation, phase: "building" });
    if (state.phase === "building") {
      if (!(await this.build(record))) return;
      state = await this.save(record, { ...state, phase: "applying_oplogs" });
    }
    // While the agent reads missing documents, the oplog waits: an update applied now to a
    // document still missing would be lost when the agent's (older) copy is inserted over it.
    const awaitingAnswers =
      state.phase === "fetching_missing_documents" && state.fetch && !state.fetch.untilTs;
    if (!awaitingAnswers) await this.applyOplog(record);
    const applied = opTimeOf(this.head.state.appliedOptime());
    if (state.phase === "applying_oplogs") {
      const t1 = record.cloneCompleteAt!;
      if (!applied || compareOpTimes(applied, t1) < 0) {
        this.mirror(record, state);
        return;
      }
      state = await this.save(record, { ...state, phase: "fetching_missing_documents" });
    }
    if (state.phase === "fetching_missing_documents") {
      if (!(await this.fetchMissing(record, state))) {
        this.mirror(record, this.state!);
        return;
      }
      state = await this.save(record, { ...this.state!, fetch: undefined, phase: "creating_indexes" });
    }
    if (state.phase === "creating_indexes") {
      // Indexes are in the head catalog already (catalog slices, index commands); record them.
      const indexes = this.status().indexesInCatalog;
      state = await this.save(record, { ...state, phase: "complete", indexes });
      this.log(`${record.name}: initial sync complete (${indexes} indexes recorded)`);
    }
    this.mirror(record, state);
  }

  /** Stores the phase state, shows it in the catalog, and pauses if the delay fault asks to. */
  private async save(record: DeploymentRecord, state: PhaseState): Promise<PhaseState> {
    this.head.write(() => this.head.state.setPhaseState(encodePhaseState(state)));
    await this.pause(this.mirror(record, state) ? this.options.phaseDelayMs : undefined);
    return state;
  }

  /**
   * Mirrors the head database's phase into the catalog (the deployment view shows it); true when
   * the phase shown changed.
   */
  private mirror(record: DeploymentRecord, state: PhaseState): boolean {
    const current = this.catalog.deployments.get(this.deploymentId);
    if (!current || current.generation !== record.generation) return false;
    if (current.state !== "initial_sync" && current.state !== "active") return false;
    if (state.phase === "complete") {
      if (current.state === "active" && current.phase === "complete") return false;
      this.catalog.deployments.setState(this.deploymentId, "active", "complete");
      return true;
    }
    // Building runs beside the clone; the phase shown stays transferring until the clone ends.
    if (state.phase === "building" && !current.cloneCompleteAt) return false;
    if (current.phase === state.phase) return false;
    this.catalog.deployments.setPhase(this.deploymentId, state.phase);
    return true;
  }

  /** Imports catalog slices and inserts documents slices; true once everything is in. */
  private async build(record: DeploymentRecord): Promise<boolean> {
    const { head } = this;
    const slices = this.catalog.slices.list(record.id, record.generation);
    for (const slice of slices.filter((s) => s.kind === "catalog")) {
      if (head.state.sliceCursor(slice.stream) !== undefined) continue;
      const db = slice.stream.slice(streamForCatalog("").length);
      const entries = await readSliceDocuments(this.store, slice);
      head.write(() => {
        for (const raw of entries) head.importCatalogEntry(db, deserializeExact(raw));
        head.state.setSliceCursor(slice.stream, slice.sequence);
      });
      await this.pause();
    }
    let complete = true;
    for (const slice of slices.filter((s) => s.kind === "documents")) {
      if (this.outOfTime()) return false;
      const cursor = head.state.sliceCursor(slice.stream) ?? -1;
      if (slice.sequence <= cursor) continue;
      if (slice.sequence !== cursor + 1 || !(await this.insertDocumentsSlice(slice))) complete = false;
    }
    if (this.mirror(record, { generation: record.generation, phase: "building" }))
      await this.pause(this.options.phaseDelayMs);
    return complete && record.cloneCompleteAt !== null;
  }

  /** False when the collection's catalog slice has not arrived yet. */
  private async insertDocumentsSlice(slice: SliceRecord): Promise<boolean> {
    const { head } = this;
    const namespace = slice.namespace ?? slice.stream.slice(streamForCollection("").length);
    const dot = namespace.indexOf(".");
    const db = namespace.slice(0, dot);
    const collection = head.catalog.collectionByName(db, namespace.slice(dot + 1));
    if (!collection) {
      if (head.state.sliceCursor(streamForCatalog(db)) === undefined) return false;
      // Not in the catalog the agent read after T0: the collection was created after that (an
      // agent restarted mid-clone lists namespaces again), so the oplog from T0 creates and
      // fills it. Its cloned documents are not needed.
      this.log(
        `${namespace}: documents slice #${slice.sequence} skipped: the collection is not in the catalog of ${db} (created after T0; the oplog brings it)`,
      );
      head.write(() => head.state.setSliceCursor(slice.stream, slice.sequence));
      return true;
    }
    const docs = await readSliceDocuments(this.store, slice);
    // A slice of up to --slice-mb compressed can hold tens of MB of documents: insert it in
    // parts, letting the server answer agents in between. Only the last part moves the cursor;
    // a crash before it inserts the whole slice again, which replaces the same documents.
    const parts = partsOf(docs, INSERT_PART_BYTES);
    for (const [k, part] of parts.entries()) {
      head.write(() => {
        head.insertDocuments(collection.uuid, part);
        if (k === parts.length - 1) head.state.setSliceCursor(slice.stream, slice.sequence);
      });
      if (k < parts.length - 1) await new Promise((resolve) => setImmediate(resolve));
    }
    await this.pause();
    return true;
  }

  /** Applies every stored oplog slice after the cursor, one slice per transaction. */
  private async applyOplog(record: DeploymentRecord): Promise<void> {
    while (!this.outOfTime()) {
      const next = (this.head.state.sliceCursor(OPLOG_STREAM) ?? -1) + 1;
      const slice = this.catalog.slices.get(record.id, record.generation, OPLOG_STREAM, next);
      if (!slice) return;
      const entries = await readSliceDocuments(this.store, slice);
      try {
        this.applier.applyBatch(entries, { sliceCursor: { stream: OPLOG_STREAM, sequence: next } });
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        throw new Error(`oplog slice #${next} (${slice.storeKey}): ${message}`, { cause: error });
      }
      await this.pause();
    }
  }

  /**
   * Advances one round of missing documents by a stage; true once the missing set is empty. The
   * stage is in the phase state (`state.fetch`):
   *  1. no `fetch`: ask the agent for every missing `_id` (a catalog request per collection);
   *  2. `fetch` without `untilTs`: wait for every answer (the oplog waits too, see `step`), then
   *     insert what was found, forget what was not, and set `untilTs`: the newest of the optimes
   *     the agent read at and the oplog the server holds;
   *  3. `fetch.untilTs`: once the oplog is applied past it, the round is over (`fetch` cleared);
   *     whatever went missing meanwhile makes another round.
   */
  private async fetchMissing(record: DeploymentRecord, state: PhaseState): Promise<boolean> {
    const { head } = this;
    const fetch = state.fetch;
    if (!fetch) {
      if (head.missing.count() === 0) return true;
      const byCollection = new Map<string, { ids: unknown[]; keys: string[] }>();
      for (const missing of head.missing.list()) {
        const uuid = missing.uuid.toHexString();
        const asked = byCollection.get(uuid) ?? { ids: [], keys: [] };
        asked.ids.push(deserializeExact(missing.idDocument)._id);
        asked.keys.push(missing.idKey.toString("hex"));
        byCollection.set(uuid, asked);
      }
      const requests: MissingFetch["requests"] = [];
      let asked = 0;
      for (const [uuid, { ids, keys }] of byCollection) {
        const collection = head.catalog.collection(new UUID(uuid))!;
        const ns = `${collection.db}.${collection.name}`;
        const request = this.catalog.missing.create(
          record.id,
          record.generation,
          ns,
          EJSON.stringify({ ids }, { relaxed: false }),
        );
        requests.push({ id: request.id, uuid, keys });
        asked += keys.length;
      }
      await this.save(record, {
        ...state,
        fetch: { requests },
        missingAsked: (state.missingAsked ?? 0) + asked,
      });
      return false;
    }
    if (!fetch.untilTs) {
      const answers: Array<{ uuid: string; keys: string[]; slice: SliceRecord }> = [];
      for (const request of fetch.requests) {
        const slice = this.catalog.slices.get(record.id, record.generation, streamForMissing(request.id), 0);
        if (!slice) return false;
        answers.push({ ...request, slice });
      }
      // Consistent again once the oplog is applied past every answer's read (the answers' lastTs)
      // and past what the server holds now.
      const oplogHead = this.catalog.slices
        .streamHeads(record.id, record.generation)
        .find((h) => h.stream === OPLOG_STREAM);
      const untilTs = [oplogHead?.lastTs, ...answers.map((a) => a.slice.lastTs)].reduce<OpTimeJson>(
        (latest, ts) => (ts && compareOpTimes(ts, latest) > 0 ? ts : latest),
        record.cloneCompleteAt!,
      );
      const found = await Promise.all(answers.map(async (a) => readSliceDocuments(this.store, a.slice)));
      head.write(() => {
        answers.forEach((answer, k) => {
          const uuid = new UUID(answer.uuid);
          const asked = new Set(answer.keys);
          for (const doc of found[k]) asked.delete(idKeyOf(doc).toString("hex"));
          // What the agent did not find was deleted since: forget it (the oplog has the delete).
          const notFound = [...head.missing.list(uuid)]
            .filter((m) => asked.has(m.idKey.toString("hex")))
            .map((m) => m.idDocument);
          head.resolveMissing(uuid, found[k], notFound);
        });
        head.state.setPhaseState(encodePhaseState({ ...state, fetch: { ...fetch, untilTs } }));
      });
      await this.pause();
      return false;
    }
    const applied = opTimeOf(head.state.appliedOptime());
    if (!applied || compareOpTimes(applied, fetch.untilTs) < 0) return false;
    // This round is settled; another one asks for whatever went missing meanwhile.
    await this.save(record, { ...state, fetch: undefined });
    return head.missing.count() === 0;
  }
}

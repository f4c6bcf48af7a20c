import { DataKey, unwrapDataKey, wrapDataKey, type DataKeyStore, type WrappedDataKey } from "./dataKeys.js";
import { EncryptionError } from "./errors.js";
import type { MasterKey } from "./masterKey.js";
import { openBlock, sealBlock, type BlockSealer } from "./seal.js";

/*
 * The key ring: the master key, the data keys it unwraps, and the active data key that seals new
 * blocks. One per server, over the catalog's DataKeyStore.
 *
 * Loading (KeyRing.load) reads every data key record and sorts them by the fingerprint of the
 * master key that wrapped them:
 *
 * - wrapped by the current master key: unwrapped now, so a damaged record (WRONG_KEY) shows at
 *   startup rather than at restore time;
 * - wrapped by one of the `previous` master keys: master key rotation. Each is unwrapped with its
 *   old key and rewrapped under the current one (DataKeyStore.replace, same id and createdAt).
 *   Blocks are untouched: they are sealed with the data keys, which do not change. Afterwards the
 *   old master key is no longer needed. Every key is unwrapped before the first replace, and a
 *   crash between replaces is resumed by loading again with the same keys (the rewrapped records
 *   now carry the current fingerprint);
 * - wrapped by any other master key: NO_KEY, naming both fingerprints, unless
 *   `allowUnknownMasterKeys` (the old key is lost for good): those data keys are then skipped and
 *   opening a block sealed with one of them is a NO_KEY error.
 *
 * Nothing is written when loading fails.
 *
 * Data key rotation (rotate()) is a different thing: a new data key becomes the active one for
 * new blocks; the old ones stay in the store to open the blocks they sealed. Blocks sealed after
 * a data key rotation do not deduplicate against those sealed before (their bytes differ), so the
 * next snapshot after a rotation stores all its blocks anew. Rotate data keys rarely (e.g. after
 * suspected exposure of a data key), and master keys as often as policy wants (cheap).
 *
 * Several KeyRings over one store (several processes) work: a block sealed with a data key another
 * ring created is found by re-reading the store. If two start on an empty store at once, each may
 * create a data key; both stay valid, at a small cost in deduplication.
 */

export interface KeyRingOptions {
  /** The current master key: wraps every data key once loaded. */
  master: MasterKey;
  /** Earlier master keys whose data keys are rewrapped under `master` when loading. */
  previous?: readonly MasterKey[];
  /** Where wrapped data keys are kept (the catalog; MemoryDataKeyStore in tests). */
  store: DataKeyStore;
  /**
   * Skip data keys wrapped by a master key that is not given instead of refusing to load. Only when
   * that key is lost for good: blocks sealed with those data keys cannot be opened.
   */
  allowUnknownMasterKeys?: boolean;
  /** Clock for new data keys' createdAt (tests). */
  now?: () => number;
}

function newestFirst(a: DataKey, b: DataKey): number {
  return b.createdAt - a.createdAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}

export class KeyRing implements BlockSealer {
  /** Ids of the data keys rewrapped from a previous master key by load(). */
  readonly rewrapped: readonly string[];
  /** Ids of the data keys skipped because their master key was not given (allowUnknownMasterKeys). */
  readonly skipped: readonly string[];

  private readonly master: MasterKey;
  private readonly previous: ReadonlyMap<string, MasterKey>;
  private readonly store: DataKeyStore;
  private readonly now: () => number;
  private readonly keys = new Map<string, DataKey>();
  private active: DataKey | undefined;

  private constructor(options: KeyRingOptions, rewrapped: string[], skipped: string[]) {
    this.master = options.master;
    this.previous = previousByFingerprint(options.master, options.previous);
    this.store = options.store;
    this.now = options.now ?? Date.now;
    this.rewrapped = rewrapped;
    this.skipped = skipped;
  }

  /** Loads the data keys, rewrapping those of previous master keys (see the comment above). */
  static load(options: KeyRingOptions): KeyRing {
    const { master, store } = options;
    const previous = previousByFingerprint(master, options.previous);
    const current: WrappedDataKey[] = [];
    const toRewrap: WrappedDataKey[] = [];
    const unknown: WrappedDataKey[] = [];
    for (const record of store.list()) {
      if (record.masterFingerprint === master.fingerprint) current.push(record);
      else if (previous.has(record.masterFingerprint)) toRewrap.push(record);
      else unknown.push(record);
    }
    if (unknown.length > 0 && !options.allowUnknownMasterKeys) {
      throw unknownMasterError(master, previous, unknown);
    }

    const unwrapped = current.map((record) => unwrapDataKey(master, record));
    const fromPrevious = toRewrap.map((record) =>
      unwrapDataKey(previous.get(record.masterFingerprint)!, record),
    );
    for (const key of fromPrevious) store.replace(wrapDataKey(master, key));

    const ring = new KeyRing(
      options,
      fromPrevious.map((key) => key.id),
      unknown.map((record) => record.id),
    );
    for (const key of [...unwrapped, ...fromPrevious]) ring.keys.set(key.id, key);
    ring.active = [...ring.keys.values()].sort(newestFirst)[0];
    return ring;
  }

  /** Fingerprint of the current master key (safe to show). */
  get masterFingerprint(): string {
    return this.master.fingerprint;
  }

  /**
   * The data key that seals new blocks: the newest one wrapped by the current master key,
   * created (and stored) if there is none.
   */
  activeDataKey(): DataKey {
    return this.active ?? this.rotate();
  }

  /**
   * Data key rotation: creates a new data key, stores it wrapped by the current master key and
   * makes it the active one. Older data keys stay, to open the blocks they sealed. Blocks sealed
   * from now on do not deduplicate against earlier ones. (Master key rotation is done by loading
   * with the new master key and the old one in `previous`.)
   */
  rotate(): DataKey {
    const key = DataKey.generate(this.now());
    this.store.insert(wrapDataKey(this.master, key));
    this.keys.set(key.id, key);
    this.active = key;
    return key;
  }

  /**
   * The data key with this id. One not loaded yet (created by another ring on the same store) is
   * read from the store. UNKNOWN_DATA_KEY if the store does not have it, NO_KEY if its master key
   * was not given.
   */
  dataKey(id: string, where = "sealed block"): DataKey {
    const known = this.keys.get(id);
    if (known) return known;
    const record = this.store.list().find((candidate) => candidate.id === id);
    if (!record) {
      throw new EncryptionError(
        "UNKNOWN_DATA_KEY",
        `${where} is sealed with data key ${id}, which is not in the data key store: the block was ` +
          "written by another Tidemark server (its catalog holds the key), or this catalog lost the key " +
          "(restore it from a backup), or the block's header is damaged",
      );
    }
    let key: DataKey;
    if (record.masterFingerprint === this.master.fingerprint) {
      key = unwrapDataKey(this.master, record);
    } else {
      const old = this.previous.get(record.masterFingerprint);
      if (!old) throw unknownMasterError(this.master, this.previous, [record], where);
      key = unwrapDataKey(old, record);
      this.store.replace(wrapDataKey(this.master, key));
    }
    this.keys.set(id, key);
    return key;
  }

  /** Seals a block with the active data key (deterministic: same plaintext, same bytes). */
  seal(plain: Buffer): Buffer {
    return sealBlock(this.activeDataKey(), plain);
  }

  /** Opens a sealed block with whichever data key sealed it. `where` names it in errors. */
  open(sealed: Buffer, where = "sealed block"): Buffer {
    return openBlock(sealed, (id) => this.dataKey(id, where), where);
  }
}

function previousByFingerprint(
  master: MasterKey,
  previous: readonly MasterKey[] | undefined,
): Map<string, MasterKey> {
  const byFingerprint = new Map<string, MasterKey>();
  for (const key of previous ?? []) {
    if (key.fingerprint !== master.fingerprint) byFingerprint.set(key.fingerprint, key);
  }
  return byFingerprint;
}

function unknownMasterError(
  master: MasterKey,
  previous: ReadonlyMap<string, MasterKey>,
  records: readonly WrappedDataKey[],
  where?: string,
): EncryptionError {
  const fingerprints = [...new Set(records.map((record) => record.masterFingerprint))];
  const given =
    `the master key given is ${master.fingerprint} (${master.source})` +
    (previous.size > 0 ? ` with previous keys ${[...previous.keys()].join(", ")}` : "");
  const what =
    records.length === 1
      ? `${where ? `${where} is sealed with ` : ""}data key ${records[0].id}, which is wrapped by master key ` +
        `${fingerprints[0]}`
      : `${records.length} data keys are wrapped by master key${fingerprints.length > 1 ? "s" : ""} ` +
        fingerprints.join(", ");
  const wanted = fingerprints.join(" / ");
  return new EncryptionError(
    "NO_KEY",
    `${what}, but ${given}: give the key file of master key ${wanted} (the right key file), or, to ` +
      `rotate to the given key, give the old key (${wanted}) as the previous master key` +
      (where
        ? ""
        : "; if that key is lost for good, load with allowUnknownMasterKeys to go on without " +
          "the snapshots sealed under it"),
  );
}

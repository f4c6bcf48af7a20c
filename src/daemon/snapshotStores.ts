/**
 * The snapshot stores the server writes to, opened once per spec and kept open: `blockstore` (or
 * a `.sqlite` path), `s3://BUCKET/PREFIX`, `fs:/PATH` (DESIGN.md "Snapshots"). A store is known
 * by its location (no credentials), which the catalog records with each snapshot and block.
 */
import { resolve } from "node:path";
import type { OpenOplogStoreOptions } from "../oplogstore/open.js";
import { FsSnapshotStore } from "../snapshot/fsStore/index.js";
import type { StoreKind } from "../snapshot/manifest.js";
import type { SnapshotSource } from "../snapshot/reader.js";
import { openBlockStore, type BlockStore } from "../snapshot/stores/index.js";
import type { Sealer, SnapshotTarget } from "../snapshot/writer.js";

export interface OpenedStore {
  kind: StoreKind;
  location: string;
  target: SnapshotTarget;
  source: SnapshotSource;
  blocks?: BlockStore;
  files?: FsSnapshotStore;
}

export interface SnapshotStoresOptions {
  dataDir: string;
  s3?: OpenOplogStoreOptions["s3"];
  sealer?: Sealer;
}

/** The kind of store a spec names, without opening it. */
export function storeKindOf(spec: string): StoreKind {
  const trimmed = spec.trim().toLowerCase();
  if (trimmed.startsWith("s3://")) return "s3";
  if (trimmed.startsWith("fs:")) return "fs";
  return "blockstore";
}

export class SnapshotStores {
  private readonly opened = new Map<string, Promise<OpenedStore>>();

  constructor(private readonly options: SnapshotStoresOptions) {}

  get sealer(): Sealer | undefined {
    return this.options.sealer;
  }

  /** Opens (once) the store a spec names; a bad spec or an unreachable store is an error saying which. */
  open(spec: string): Promise<OpenedStore> {
    const key = spec.trim();
    let opened = this.opened.get(key);
    if (!opened) {
      opened = this.openNew(key);
      // A failure is not cached: the next snapshot tries again (the endpoint may be back).
      opened.catch(() => this.opened.delete(key));
      this.opened.set(key, opened);
    }
    return opened;
  }

  /** The store a snapshot was written to, by the location the catalog recorded. */
  async byLocation(location: string): Promise<OpenedStore> {
    for (const opened of this.opened.values()) {
      const store = await opened.catch(() => undefined);
      if (store?.location === location) return store;
    }
    // Locations are specs too: fs:/PATH, s3://BUCKET/PREFIX, file:///…/x.sqlite.
    return this.open(location);
  }

  async close(): Promise<void> {
    for (const opened of this.opened.values()) {
      const store = await opened.catch(() => undefined);
      await store?.blocks?.close();
    }
    this.opened.clear();
  }

  private async openNew(spec: string): Promise<OpenedStore> {
    const { sealer } = this.options;
    if (storeKindOf(spec) === "fs") {
      const path = resolve(spec.slice(spec.indexOf(":") + 1));
      if (spec.slice(3).trim() === "") {
        throw new Error("fs: needs a directory: fs:/PATH (for example fs:/backups/tidemark)");
      }
      const files = await FsSnapshotStore.open(path, sealer ? { seal: sealer.seal, open: sealer.open } : {});
      const location = `fs:${path}`;
      return {
        kind: "fs",
        location,
        files,
        target: { kind: "fs", files, location },
        source: { kind: "fs", files },
      };
    }
    const blocks = await openBlockStore(spec, { dataDir: this.options.dataDir, s3: this.options.s3 });
    const kind = storeKindOf(spec);
    return {
      kind,
      location: blocks.location,
      blocks,
      target: { kind: kind as "blockstore" | "s3", blocks },
      source: { kind: "blocks", blocks, sealer },
    };
  }
}

import { openCatalog, type CatalogDatabase } from "./catalog.js";
import { DataKeyRepository } from "./dataKeys.js";
import { DeploymentRepository } from "./deployments.js";
import { MissingRequestRepository } from "./missing.js";
import { CloneProgressRepository } from "./progress.js";
import { RestoreRepository } from "./restores.js";
import { SliceRepository } from "./slices.js";
import { SnapshotRepository } from "./snapshots.js";
import { VerificationRepository } from "./verifications.js";

/** The catalog and its repositories, opened together. */
export class Catalog {
  readonly deployments: DeploymentRepository;
  readonly slices: SliceRepository;
  readonly cloneProgress: CloneProgressRepository;
  readonly missing: MissingRequestRepository;
  readonly verifications: VerificationRepository;
  readonly snapshots: SnapshotRepository;
  readonly dataKeys: DataKeyRepository;
  readonly restores: RestoreRepository;

  constructor(readonly db: CatalogDatabase) {
    this.deployments = new DeploymentRepository(db);
    this.slices = new SliceRepository(db);
    this.cloneProgress = new CloneProgressRepository(db);
    this.missing = new MissingRequestRepository(db);
    this.verifications = new VerificationRepository(db);
    this.snapshots = new SnapshotRepository(db);
    this.dataKeys = new DataKeyRepository(db);
    this.restores = new RestoreRepository(db);
  }

  static open(path: string): Catalog {
    return new Catalog(openCatalog(path));
  }

  close(): void {
    this.db.close();
  }
}

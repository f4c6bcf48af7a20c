/**
 * Encryption at rest for snapshots: the master key from `--encryption-key-file` or
 * TIDEMARK_ENCRYPTION_KEY, the data keys it wraps in the catalog, and rotation from earlier
 * master keys (`previousEncryptionKeyFiles`). Without a master key snapshots are not encrypted.
 */
import type { Catalog } from "../catalog/index.js";
import { KeyRing, MasterKey } from "../snapshot/encryption/index.js";
import type { Sealer } from "../snapshot/writer.js";
import type { ServerConfig } from "./options.js";

export const ENCRYPTION_KEY_VARIABLE = "TIDEMARK_ENCRYPTION_KEY";

export function openSealer(
  catalog: Catalog,
  config: ServerConfig,
  env: Record<string, string | undefined>,
  log: (line: string) => void,
): Sealer | undefined {
  const warn = (message: string) => log(`warning: ${message}`);
  const master = config.encryptionKeyFile
    ? MasterKey.fromFile(config.encryptionKeyFile, { onWarning: warn })
    : env[ENCRYPTION_KEY_VARIABLE]
      ? MasterKey.fromEnvironment(ENCRYPTION_KEY_VARIABLE, env as NodeJS.ProcessEnv)
      : undefined;
  if (!master) {
    if (catalog.dataKeys.list().length > 0)
      warn(
        "encrypted snapshots exist but no master key is given: they cannot be read or verified, and new " +
          `snapshots are not encrypted; start with --encryption-key-file or ${ENCRYPTION_KEY_VARIABLE}`,
      );
    return undefined;
  }
  const previous = config.previousEncryptionKeyFiles.map((file) =>
    MasterKey.fromFile(file, { onWarning: warn }),
  );
  const ring = KeyRing.load({ master, previous, store: catalog.dataKeys });
  if (ring.rewrapped.length > 0)
    log(`encryption: ${ring.rewrapped.length} data keys re-wrapped under master key ${master.fingerprint}`);
  log(`encryption: snapshots are encrypted (AES-256-GCM), master key ${master.fingerprint}`);
  return { seal: (plain) => ring.seal(plain), open: (sealed) => ring.open(sealed) };
}

/**
 * The missing-document set: `_id`s that an update could not find (the clone is fuzzy: the update
 * may precede the document's arrival in the clone, or the document may be gone by now). The
 * daemon asks the agent for them, inserts those that still exist (`HeadDatabase.resolveMissing`)
 * and keeps applying past the optime of the fetch. An insert, replacement or delete of the same
 * `_id` in the oplog takes it out of the set again; so does dropping the collection.
 */
import { UUID, type Binary } from "bson";
import { removeRange } from "./documents.js";
import type { HeadEnvironment } from "./environment.js";
import { documentKey, idKeyPart, prefixRange, uuidBytes, UUID_LENGTH } from "./keys.js";

export interface MissingDocument {
  uuid: UUID;
  idKey: Buffer;
  /** `{_id: <value>}` as raw BSON, with the `_id`'s exact type: the agent's query for it. */
  idDocument: Buffer;
}

export class MissingSet {
  constructor(private readonly env: HeadEnvironment) {}

  add(uuid: Binary | Uint8Array, idKey: Uint8Array, idDocument: Uint8Array): void {
    this.env.assertWriting("recording a missing document");
    this.env.stores.missing.putSync(documentKey(uuidBytes(uuid), idKey), Buffer.from(idDocument));
  }

  remove(uuid: Binary | Uint8Array, idKey: Uint8Array): boolean {
    this.env.assertWriting("removing a missing document");
    return this.env.stores.missing.removeSync(documentKey(uuidBytes(uuid), idKey));
  }

  /** Whether collection `uuid` has any missing `_id`. */
  hasAny(uuid: Binary | Uint8Array): boolean {
    for (const _key of this.env.stores.missing.getKeys({ ...prefixRange(uuidBytes(uuid)), limit: 1 }))
      return true;
    return false;
  }

  has(uuid: Binary | Uint8Array, idKey: Uint8Array): boolean {
    return this.env.stores.missing.doesExist(documentKey(uuidBytes(uuid), idKey));
  }

  /** Forgets every missing `_id` of a collection (dropped or re-created). */
  removeCollection(uuid: Binary | Uint8Array): number {
    this.env.assertWriting("removing missing documents");
    return removeRange(this.env.stores.missing, prefixRange(uuidBytes(uuid)));
  }

  /** The missing `_id`s of one collection, or of all, in (UUID, `_id`) order. */
  *list(uuid?: Binary | Uint8Array): Generator<MissingDocument> {
    const range = uuid === undefined ? {} : prefixRange(uuidBytes(uuid));
    for (const { key, value } of this.env.stores.missing.getRange(range)) {
      yield {
        uuid: new UUID(Buffer.from(key.subarray(0, UUID_LENGTH))),
        idKey: Buffer.from(idKeyPart(key)),
        idDocument: value,
      };
    }
  }

  count(): number {
    return this.env.stores.missing.getCount({});
  }
}

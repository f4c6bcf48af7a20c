import { deserialize, type Document } from "bson";
import { encodeIdKey } from "../../bson/keyEncoding.js";
import { CommandError, ErrorCode } from "../errors.js";
import { getPath } from "./documentPath.js";

/** An index as listIndexes shows it: `{v, key, name, ...options}`, options kept verbatim. */
export interface IndexSpec extends Document {
  v: number;
  key: Document;
  name: string;
}

export const ID_INDEX: IndexSpec = { v: 2, key: { _id: 1 }, name: "_id_" };

/**
 * The collection's index catalog. Only uniqueness is enforced here: queries scan the records,
 * which is all an in-memory emulator needs, and secondary indexes are otherwise metadata.
 */
export class IndexCatalog {
  private readonly specs: IndexSpec[] = [];
  /** For each unique secondary index, the encoded key → owning document's _id key. */
  private readonly uniqueKeys = new Map<string, Map<string, string>>();

  constructor(
    /** A function, since a rename changes the namespace that error messages name. */
    private readonly ns: () => string,
    hasIdIndex: boolean,
  ) {
    if (hasIdIndex) this.specs.push({ ...ID_INDEX });
  }

  list(): IndexSpec[] {
    return this.specs.map((spec) => ({ ...spec }));
  }

  find(name: string): IndexSpec | undefined {
    return this.specs.find((spec) => spec.name === name);
  }

  findByKey(key: Document): IndexSpec | undefined {
    const wanted = JSON.stringify(key);
    return this.specs.find((spec) => JSON.stringify(spec.key) === wanted);
  }

  get hasUniqueSecondary(): boolean {
    return this.uniqueKeys.size > 0;
  }

  /** Adds an index, building its unique-key map from the existing documents. */
  add(spec: IndexSpec, documents: Iterable<[string, Buffer]>): void {
    if (spec.unique && spec.name !== ID_INDEX.name) {
      const keys = new Map<string, string>();
      for (const [idKey, raw] of documents) {
        const key = this.uniqueKey(spec, deserialize(raw));
        if (key === undefined) continue;
        const owner = keys.get(key);
        if (owner !== undefined && owner !== idKey) throw this.duplicate(spec, deserialize(raw));
        keys.set(key, idKey);
      }
      this.uniqueKeys.set(spec.name, keys);
    }
    this.specs.push(spec);
  }

  remove(name: string): IndexSpec | undefined {
    const at = this.specs.findIndex((spec) => spec.name === name);
    if (at < 0) return undefined;
    this.uniqueKeys.delete(name);
    return this.specs.splice(at, 1)[0];
  }

  /** Throws DuplicateKey if `doc` (owned by `idKey`) would violate a unique secondary index. */
  check(idKey: string, doc: Document): void {
    for (const [name, keys] of this.uniqueKeys) {
      const spec = this.find(name)!;
      const key = this.uniqueKey(spec, doc);
      if (key === undefined) continue;
      const owner = keys.get(key);
      if (owner !== undefined && owner !== idKey) throw this.duplicate(spec, doc);
    }
  }

  onInsert(idKey: string, doc: Document): void {
    for (const [name, keys] of this.uniqueKeys) {
      const key = this.uniqueKey(this.find(name)!, doc);
      if (key !== undefined) keys.set(key, idKey);
    }
  }

  onRemove(idKey: string, doc: Document): void {
    for (const [name, keys] of this.uniqueKeys) {
      const key = this.uniqueKey(this.find(name)!, doc);
      if (key !== undefined && keys.get(key) === idKey) keys.delete(key);
    }
  }

  private uniqueKey(spec: IndexSpec, doc: Document): string | undefined {
    const fields = Object.keys(spec.key);
    const values = fields.map((field) => getPath(doc, field));
    if (spec.sparse && values.every((value) => value === undefined)) return undefined;
    return Buffer.concat(values.map((value) => encodeIdKey(value ?? null))).toString("latin1");
  }

  private duplicate(spec: IndexSpec, doc: Document): CommandError {
    const keyValue: Document = {};
    for (const field of Object.keys(spec.key)) keyValue[field] = getPath(doc, field) ?? null;
    const shown = Object.entries(keyValue)
      .map(([field, value]) => `${field}: ${JSON.stringify(value)}`)
      .join(", ");
    return new CommandError(
      ErrorCode.DuplicateKey,
      `E11000 duplicate key error collection: ${this.ns()} index: ${spec.name} dup key: { ${shown} }`,
      { keyPattern: spec.key, keyValue },
    );
  }
}

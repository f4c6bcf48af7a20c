import { readFileSync } from "node:fs";

/*
 * Real BSON files copied into test/fixtures/slice/ (sources in test/fixtures/README.md):
 * mongo-tools' bsondump test data and a real MongoDB 5.0.5 oplog from Percona Backup for MongoDB.
 */

export const SAMPLE = "sample.bson";
export const ALL_TYPES = "all_types.bson";
export const OPLOG_50 =
  "pbm_disttxn_50__pbmPitr__rs1__20220207__20220207140605-18.20220207141653-1.oplog.bson";

export function fixtureBytes(name: string): Buffer {
  return readFileSync(new URL(`../fixtures/slice/${name}`, import.meta.url));
}

/** Splits a .bson file by its length prefixes, written here independently of src/slice. */
export function fixtureDocuments(name: string): Buffer[] {
  const bytes = fixtureBytes(name);
  const documents: Buffer[] = [];
  for (let pos = 0; pos < bytes.length;) {
    const size = bytes.readInt32LE(pos);
    documents.push(bytes.subarray(pos, pos + size));
    pos += size;
  }
  return documents;
}

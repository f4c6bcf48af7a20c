/**
 * mongo-tools' transaction scenarios (test/fixtures/oplog/mongo-tools, see the fixtures README):
 * each scenario's oplog entries, applied to an empty head database, must leave exactly its
 * expected post-image; an incomplete chain or a prepared transaction without its commit leaves
 * nothing applied, but held for a later batch.
 */
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { OplogApplier } from "../../src/oplog/apply/applier.js";
import { bsonOf, relaxedDocuments, tempHead, type TempHead } from "../headdb/helpers.js";

interface Scenario {
  ops: unknown[];
  ns: string;
  postimage?: unknown[];
}

function scenarios(file: string): Array<[string, Scenario]> {
  const text = readFileSync(new URL(`../fixtures/oplog/mongo-tools/${file}`, import.meta.url), "utf8");
  return Object.entries(JSON.parse(text) as Record<string, Scenario>);
}

const everything = () => true;

let temp: TempHead | undefined;
afterEach(async () => {
  await temp?.dispose();
  temp = undefined;
});

describe.each(["transactions.json", "transactions-6.1.json", "txn-oplog_entries.json"])("%s", (file) => {
  // "not transaction with multiOpType" is an applyOps entry without `ns`, which no server writes.
  const cases = scenarios(file).filter(([, scenario]) => scenario.postimage !== undefined);

  it.each(cases)("%s: one batch gives the post-image", (_name, scenario) => {
    temp = tempHead();
    const applier = new OplogApplier(temp.head, { include: everything });
    applier.applyBatch(scenario.ops.map(bsonOf));
    const [db, coll] = [
      scenario.ns.slice(0, scenario.ns.indexOf(".")),
      scenario.ns.slice(scenario.ns.indexOf(".") + 1),
    ];
    expect(relaxedDocuments(temp.head, db, coll)).toEqual(scenario.postimage);
  });

  it.each(cases)(
    "%s: one entry per batch, each batch twice, reopened between batches",
    async (_name, scenario) => {
      temp = tempHead();
      for (const op of scenario.ops) {
        const applier = new OplogApplier(temp.head, { include: everything });
        applier.applyBatch([bsonOf(op)]);
        const again = applier.applyBatch([bsonOf(op)]);
        expect(again.applied).toBe(0);
        expect(again.skipped).toBe(1);
        await temp.reopen();
      }
      const [db, coll] = [
        scenario.ns.slice(0, scenario.ns.indexOf(".")),
        scenario.ns.slice(scenario.ns.indexOf(".") + 1),
      ];
      expect(relaxedDocuments(temp.head, db, coll)).toEqual(scenario.postimage);
    },
  );
});

describe("held transactions", () => {
  it("holds an incomplete chain and a prepared transaction until a later batch", () => {
    temp = tempHead();
    const all = Object.fromEntries(scenarios("transactions.json"));
    const applier = new OplogApplier(temp.head, { include: everything });
    const incomplete = all["large, unprepared, incomplete"].ops.map(bsonOf);
    const result = applier.applyBatch(incomplete);
    expect(result.held).toBe(2);
    expect(temp.head.pending.count()).toBe(2);
    expect(relaxedDocuments(temp.head, "txntest", "i")).toEqual([]);
  });
});

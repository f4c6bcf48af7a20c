/**
 * A load that stops part way (src/restore/loader): the error is a RestoreInterruptedError whose
 * cause is the first failure and which lists the target namespaces that are complete (documents
 * and indexes; a view once created) and those that are not (partly loaded, created but not reached,
 * or not created). Failures before anything is written stay the errors they were.
 */
import { createHash } from "node:crypto";
import { EJSON, serialize } from "bson";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  LoadError,
  loadCollections,
  RestoreInterruptedError,
  SourceReadError,
  TargetNamespacesExistError,
  type LoaderCollection,
} from "../../src/restore/loader/index.js";
import { withEmulator, type EmulatorFixture } from "../helpers/emulator.js";

/** `count` documents with `_id`s 0.. in order, a secondary index, and their dbHash MD5. */
function collection(namespace: string, count: number, failAfter?: Error): LoaderCollection {
  const docs = Array.from({ length: count }, (_, i) => Buffer.from(serialize({ _id: i, at: namespace })));
  const md5 = createHash("md5");
  for (const doc of docs) md5.update(doc);
  const canonical = (value: object) => EJSON.serialize(value, { relaxed: false }) as Record<string, unknown>;
  return {
    namespace,
    type: "collection",
    options: {},
    indexes: [
      canonical({ v: 2, key: { _id: 1 }, name: "_id_" }),
      canonical({ v: 2, key: { at: 1 }, name: "at_1" }),
    ],
    md5: md5.digest("hex"),
    count,
    documents: async function* () {
      for (const [i, doc] of docs.entries()) {
        if (failAfter && i === Math.floor(count / 2)) throw failAfter;
        yield doc;
      }
    },
  };
}

const view = (namespace: string, on: string): LoaderCollection => ({
  namespace,
  type: "view",
  options: { viewOn: on, pipeline: [] },
  indexes: [],
});

const interruption = async (attempt: Promise<unknown>): Promise<RestoreInterruptedError> => {
  const error = await attempt.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(RestoreInterruptedError);
  return error as RestoreInterruptedError;
};

describe("an interrupted load", () => {
  let fx: EmulatorFixture;
  beforeEach(async () => {
    fx = await withEmulator();
  });
  afterEach(async () => {
    await fx.close();
  });

  it("a source that fails part way: what was loaded before is complete, the rest is not; a rerun with drop finishes", async () => {
    const broken = new Error("the download was cut");
    const collections = [
      collection("shop.a", 300),
      collection("shop.b", 300, broken),
      collection("shop.c", 300),
      view("shop.a_view", "a"),
    ];
    const error = await interruption(
      loadCollections({ uri: fx.emulator.uri, collections, parallel: 1, batchCount: 50 }),
    );
    expect(error.code).toBe("SOURCE_FAILED");
    expect(error.completed).toEqual(["shop.a", "shop.a_view"]);
    expect(error.incomplete).toEqual(["shop.b", "shop.c"]);
    expect(error.incompleteSources).toEqual(["shop.b", "shop.c"]);
    expect(error.cause).toBeInstanceOf(SourceReadError);
    expect((error.cause as SourceReadError).namespace).toBe("shop.b");
    expect((error.cause as SourceReadError).cause).toBe(broken);
    expect(error.message).toBe(
      "shop.b: reading its documents failed: the download was cut; the load stopped with 2 of 4 " +
        "namespaces complete (incomplete: shop.b, shop.c)",
    );
    // Complete means complete: every document and the index are there.
    const a = fx.client.db("shop").collection("a");
    expect(await a.countDocuments()).toBe(300);
    expect((await a.listIndexes().toArray()).map((i) => i.name)).toEqual(["_id_", "at_1"]);
    expect(await fx.client.db("shop").collection("b").countDocuments()).toBeLessThan(300);
    expect(await fx.client.db("shop").collection("c").countDocuments()).toBe(0);

    // Without drop, the rerun is refused before writing, as any restore onto existing namespaces.
    const healed = [collection("shop.a", 300), collection("shop.b", 300), collection("shop.c", 300)];
    await expect(loadCollections({ uri: fx.emulator.uri, collections: healed })).rejects.toThrow(
      TargetNamespacesExistError,
    );
    const rerun = await loadCollections({
      uri: fx.emulator.uri,
      collections: healed,
      include: error.incompleteSources,
      drop: true,
    });
    expect(rerun.verified).toBe(true);
    expect(rerun.verification.map((v) => v.namespace)).toEqual(["shop.b", "shop.c"]);
  });

  it("names the target namespaces (after a rename) and the source ones to include again", async () => {
    const error = await interruption(
      loadCollections({
        uri: fx.emulator.uri,
        collections: [collection("shop.a", 10), collection("shop.b", 10, new Error("cut"))],
        rename: (ns) => ns.replace(/^shop\./, "copy."),
        parallel: 1,
      }),
    );
    expect(error.completed).toEqual(["copy.a"]);
    expect(error.incomplete).toEqual(["copy.b"]);
    expect(error.incompleteSources).toEqual(["shop.b"]);
  });

  it("a target that refuses a write or a create: TARGET_FAILED, with what was not reached as incomplete", async () => {
    fx.emulator.faults.failCommand("insert", 8 /* UnknownError */, 1);
    const insert = await interruption(
      loadCollections({
        uri: fx.emulator.uri,
        collections: [collection("shop.a", 10), collection("shop.b", 10), view("shop.v", "a")],
        parallel: 1,
      }),
    );
    expect(insert.code).toBe("TARGET_FAILED");
    expect(insert.cause).toBeInstanceOf(LoadError);
    expect((insert.cause as Error).message).toMatch(/^shop\.a: inserting documents failed/);
    expect(insert.completed).toEqual(["shop.v"]);
    expect(insert.incomplete).toEqual(["shop.a", "shop.b"]);

    fx.emulator.faults.failCommand("create", 8, 1);
    const create = await interruption(
      loadCollections({
        uri: fx.emulator.uri,
        collections: [collection("other.a", 10), collection("other.b", 10)],
      }),
    );
    expect(create.code).toBe("TARGET_FAILED");
    expect((create.cause as Error).message).toMatch(/^other\.a: cannot create the collection/);
    expect(create.completed).toEqual([]);
    expect(create.incomplete).toEqual(["other.a", "other.b"]);
  });
});

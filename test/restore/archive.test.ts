import { createReadStream } from "node:fs";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Writable } from "node:stream";
import { gunzipSync, gzipSync } from "node:zlib";
import { BSON, EJSON, Int32, ObjectId } from "bson";
import { describe, expect, it, vi } from "vitest";
import { elements } from "../../src/bson/elements.js";
import {
  ArchiveError,
  ArchiveWriter,
  crc64Ecma,
  namespaceName,
  openArchive,
  type ArchiveDocumentEvent,
  type ArchiveNamespaceEndEvent,
  type ArchiveNamespaceInput,
  type ArchiveReaderOptions,
  type ArchiveWriterOptions,
} from "../../src/restore/archive/index.js";
import { metadataJson, parseMetadataJson, queryUnescape } from "../../src/snapshot/fsStore/index.js";

const FIXTURES = new URL("../fixtures/mongodump-archive/", import.meta.url).pathname;

// Per archive (see the fixtures README): server version, prelude length, and every namespace's EOF
// block in archive order as [namespace, documents, CRC], from the conformance INVENTORY.json.
const EXPECTED: Record<
  string,
  { server: string; prelude: number; namespaces: Array<[string, number, string]> }
> = {
  "bad-format.archive": { server: "4.0.14", prelude: 1, namespaces: [["test.ixtest", 0, "0"]] },
  "dump-w-oplog.archive": {
    server: "4.0.2",
    prelude: 3,
    namespaces: [
      ["admin.system.version", 1, "914493570479648269"],
      ["test.foo", 25, "-7149850455237104254"],
      ["oplog", 18, "-9206534501618249364"],
    ],
  },
  "test.bar.archive": {
    server: "3.4.3",
    prelude: 2,
    namespaces: [
      ["admin.system.version", 1, "-682997726120892866"],
      ["test.bar", 1, "-7824457949569593127"],
    ],
  },
  "timeseries-dump.archive": {
    server: "5.0.0-rc0",
    prelude: 3,
    namespaces: [
      ["admin.system.version", 1, "5808966695042502227"],
      ["admin.system.views", 0, "0"],
      ["timeseries_test.system.buckets.foo_ts", 10, "4620499534075225423"],
    ],
  },
  "pbm_disttxn_4x__2022-02-09T12.42.32Z_rs1.dump.archive": {
    server: "4.4.12-12",
    prelude: 13,
    namespaces: [
      ["admin.system.users", 2, "-442819191726992942"],
      ["admin.system.roles", 1, "-129175732611740158"],
      ["admin.system.version", 6, "369016013033203921"],
      ["trx.test", 10, "8825441249086609580"],
      ["config.cache.chunks.trx.test", 4, "3710984039194984426"],
      ["config.cache.databases", 3, "3853208546967440680"],
      ["admin.pbmRUsers", 2, "-442819191726992942"],
      ["admin.pbmRRoles", 1, "-129175732611740158"],
      ["config.cache.collections", 2, "-3886408633142300940"],
      ["config.image_collection", 0, "0"],
      ["config.rangeDeletions", 0, "0"],
      ["config.migrationCoordinators", 0, "0"],
      ["config.cache.chunks.config.system.sessions", 1024, "-7415014456460976493"],
    ],
  },
  "pbm_disttxn_4x__2022-02-09T12.42.32Z_rs2.dump.archive": {
    server: "4.4.12-12",
    prelude: 13,
    namespaces: [
      ["admin.system.users", 2, "8234003347383187766"],
      ["admin.system.roles", 1, "-129175732611740158"],
      ["admin.system.version", 5, "2254888603697790105"],
      ["trx.test", 4, "7109884179614875316"],
      ["config.cache.chunks.trx.test", 4, "3472310072811121814"],
      ["config.cache.databases", 3, "-126506991553835737"],
      ["admin.pbmRUsers", 2, "8234003347383187766"],
      ["admin.pbmRRoles", 1, "-129175732611740158"],
      ["config.rangeDeletions", 1, "-8482809499340650114"],
      ["config.cache.collections", 2, "-4817298243681459696"],
      ["config.image_collection", 0, "0"],
      ["config.cache.chunks.config.system.sessions", 1024, "-4846826035959199299"],
      ["config.migrationCoordinators", 0, "0"],
    ],
  },
  "pbm_disttxn_50__2022-02-07T14.05.59Z_rs1.dump.archive": {
    server: "5.0.5-4",
    prelude: 14,
    namespaces: [
      ["admin.system.users", 2, "1997844604860797393"],
      ["admin.system.roles", 1, "-129175732611740158"],
      ["admin.system.version", 6, "1215655292384523342"],
      ["config.cache.chunks.trx.test", 4, "2972298916257993538"],
      ["admin.pbmRUsers", 2, "1997844604860797393"],
      ["trx.test", 3, "-7976806397685608359"],
      ["config.cache.databases", 2, "5681152176986214408"],
      ["admin.pbmRRoles", 1, "-129175732611740158"],
      ["config.cache.collections", 2, "6336210884659519667"],
      ["config.vectorClock", 1, "5975522759936672269"],
      ["config.migrationCoordinators", 0, "0"],
      ["config.image_collection", 0, "0"],
      ["config.rangeDeletions", 0, "0"],
      ["config.cache.chunks.config.system.sessions", 1024, "-3266232993355247061"],
    ],
  },
  "pbm_disttxn_50__2022-02-07T14.05.59Z_rs2.dump.archive": {
    server: "5.0.5-4",
    prelude: 17,
    namespaces: [
      ["admin.system.users", 2, "-3570227974522304753"],
      ["admin.system.roles", 1, "-129175732611740158"],
      ["admin.system.version", 6, "-5799070000984913003"],
      ["trx.test", 3, "6375056756052150696"],
      ["config.cache.chunks.trx.test", 4, "2972298916257993538"],
      ["trx.test2", 7, "4707388186466976870"],
      ["config.cache.databases", 2, "3421359253764797493"],
      ["config.cache.collections", 2, "6336210884659519667"],
      ["admin.pbmRUsers", 2, "-3570227974522304753"],
      ["config.cache.chunks.config.system.sessions", 1024, "-3266232993355247061"],
      ["config.vectorClock", 1, "-820428026144649912"],
      ["admin.pbmRRoles", 1, "-129175732611740158"],
      ["config.system.sharding_ddl_coordinators", 0, "0"],
      ["config.migrationCoordinators", 0, "0"],
      ["config.collection_critical_sections", 0, "0"],
      ["config.image_collection", 0, "0"],
      ["config.rangeDeletions", 0, "0"],
    ],
  },
};

interface ReadResult {
  reader: Awaited<ReturnType<typeof openArchive>>;
  /** Documents per namespace name, in order. */
  docs: Map<string, Buffer[]>;
  ends: ArchiveNamespaceEndEvent[];
  /** Namespace names in the order their documents came (consecutive duplicates collapsed). */
  order: string[];
}

async function readAll(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  options?: ArchiveReaderOptions,
): Promise<ReadResult> {
  const reader = await openArchive(source, options);
  const docs = new Map<string, Buffer[]>();
  const ends: ArchiveNamespaceEndEvent[] = [];
  const order: string[] = [];
  for await (const event of reader) {
    const name = namespaceName(event.db, event.collection);
    if (event.kind === "document") {
      if (!docs.has(name)) docs.set(name, []);
      docs.get(name)!.push(Buffer.from(event.doc));
      if (order[order.length - 1] !== name) order.push(name);
    } else {
      ends.push(event);
    }
  }
  expect(reader.complete).toBe(true);
  return { reader, docs, ends, order };
}

async function readError(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  options?: ArchiveReaderOptions,
): Promise<ArchiveError> {
  try {
    await readAll(source, options);
  } catch (err) {
    expect(err).toBeInstanceOf(ArchiveError);
    return err as ArchiveError;
  }
  throw new Error("reading the archive did not fail");
}

function fixture(name: string): Promise<Buffer> {
  return readFile(join(FIXTURES, name));
}

/** A writable that collects what it is given. */
function collector(): { sink: Writable; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      cb();
    },
  });
  return { sink, bytes: () => Buffer.concat(chunks) };
}

/** Rewrites an archive read by our reader with our writer, namespace after namespace. */
async function rewrite(
  original: ReadResult,
  options: ArchiveWriterOptions & { keepType?: boolean } = {},
): Promise<{ bytes: Buffer; written: Map<string, bigint> }> {
  const { sink, bytes } = collector();
  const { header, namespaces } = original.reader;
  const writer = new ArchiveWriter(sink, {
    serverVersion: header.serverVersion,
    toolVersion: header.toolVersion,
    concurrentCollections: header.concurrentCollections,
    ...options,
  });
  await writer.addNamespaces(
    namespaces.map((ns): ArchiveNamespaceInput => ({
      db: ns.db,
      collection: ns.collection,
      metadataJson: ns.metadataJson,
      type: ns.type ?? null,
    })),
  );
  const written = new Map<string, bigint>();
  for (const end of original.ends) {
    const name = namespaceName(end.db, end.collection);
    const result = await writer.writeDocuments(end.db, end.collection, original.docs.get(name) ?? []);
    written.set(name, result.crc);
  }
  await writer.finish();
  return { bytes: bytes(), written };
}

function* makeDocs(prefix: string, count: number, pad = 0): Generator<Buffer> {
  for (let i = 0; i < count; i++) {
    yield Buffer.from(
      BSON.serialize({ _id: new ObjectId(), n: new Int32(i), name: `${prefix}-${i}`, pad: "x".repeat(pad) }),
    );
  }
}

describe("CRC-64", () => {
  it("is Go's crc64.ECMA (CRC-64/XZ check value)", () => {
    expect(crc64Ecma(Buffer.from("123456789", "latin1"))).toBe(0x995dc9bbdf1939fan);
    expect(crc64Ecma(Buffer.alloc(0))).toBe(0n);
  });
});

describe("reading real mongodump archives", () => {
  for (const [file, expected] of Object.entries(EXPECTED)) {
    it(`${file}: namespaces, document counts and CRCs`, async () => {
      // Small chunks exercise documents split across reads.
      const stream = createReadStream(join(FIXTURES, file), { highWaterMark: 1000 });
      const result = await readAll(stream, { strictMetadata: file !== "bad-format.archive" });
      expect(result.reader.gzip).toBe(false);
      expect(result.reader.header.version).toBe("0.1");
      expect(result.reader.header.serverVersion).toBe(expected.server);
      expect(result.reader.namespaces).toHaveLength(expected.prelude);
      expect(
        result.ends.map((e) => [namespaceName(e.db, e.collection), e.documents, e.crc.toString()]),
      ).toEqual(expected.namespaces);
      for (const [name, count] of expected.namespaces) {
        const docs = result.docs.get(name) ?? [];
        expect(docs).toHaveLength(count);
        // Each document is whole BSON.
        for (const doc of docs) expect(() => BSON.deserialize(doc)).not.toThrow();
      }
      expect(result.reader.results).toEqual(result.ends);
    });
  }

  it("releases the input when the caller stops early (plain and gzip)", async () => {
    for (const gzip of [false, true]) {
      const path = join(FIXTURES, "pbm_disttxn_50__2022-02-07T14.05.59Z_rs2.dump.archive");
      const file = gzip ? join(await mkdtemp(join(tmpdir(), "tidemark-archive-")), "a.gz") : path;
      if (gzip) await writeFile(file, gzipSync(await readFile(path)));
      const stream = createReadStream(file, { highWaterMark: 1024 });
      const reader = await openArchive(stream);
      for await (const event of reader) if (event.kind === "document") break;
      await vi.waitFor(() => expect(stream.destroyed, gzip ? "gzip" : "plain").toBe(true), { timeout: 2000 });
      if (gzip) await rm(join(file, ".."), { recursive: true, force: true });
    }
  });

  it("handles interleaved segments (PBM 5.0 archive)", async () => {
    const result = await readAll([await fixture("pbm_disttxn_50__2022-02-07T14.05.59Z_rs1.dump.archive")]);
    // config.cache.collections and config.vectorClock segments are open at the same time.
    const names = result.ends.map((e) => namespaceName(e.db, e.collection));
    expect(names.indexOf("config.cache.collections") + 1).toBe(names.indexOf("config.vectorClock"));
    const ns = result.reader.namespaces.find((n) => n.collection === "trx" || n.db === "trx");
    expect(ns?.metadata?.collectionName).toBe("test");
    expect(ns?.kind).toBe("collection");
  });

  it("reads the prelude: metadata, oplog, timeseries and old archives", async () => {
    const ts = await openArchive([await fixture("timeseries-dump.archive")]);
    const fooTs = ts.namespaces.find((n) => n.collection === "foo_ts")!;
    expect(fooTs).toMatchObject({ db: "timeseries_test", type: "timeseries", kind: "timeseries" });
    expect(fooTs.dataCollection).toBe("system.buckets.foo_ts");
    expect(fooTs.metadata?.options.timeseries).toMatchObject({ timeField: "ts", metaField: "meta" });
    const text = await readFile(join(FIXTURES, "ts_dump/timeseries_test/foo_ts.metadata.json"), "utf8");
    expect(fooTs.metadataJson).toBe(text);

    const oplog = await openArchive([await fixture("dump-w-oplog.archive")]);
    const entry = oplog.namespaces.find((n) => n.collection === "oplog")!;
    expect(entry).toMatchObject({
      db: "",
      metadataJson: "",
      metadata: undefined,
      kind: "oplog",
      type: undefined,
    });
    const foo = oplog.namespaces.find((n) => n.collection === "foo")!;
    expect(foo.type).toBeUndefined(); // 4.0-era prelude has no type
    expect(foo.metadata?.indexes[0].name).toBe("_id_");
    expect(foo.metadata?.collectionName).toBe("foo");
  });

  it("rejects the prelude metadata of bad-format.archive, naming the namespace", async () => {
    const err = await readError([await fixture("bad-format.archive")]);
    expect(err.code).toBe("METADATA");
    expect(err.namespace).toBe("test.ixtest");
    expect(err.message).toContain('"test.ixtest"');
    const lenient = await openArchive([await fixture("bad-format.archive")], { strictMetadata: false });
    expect(lenient.namespaces[0].metadata).toBeUndefined();
    expect(lenient.namespaces[0].metadataProblem).toMatch(/not valid metadata.json/);
  });
});

describe("writing archives", () => {
  for (const file of ["test.bar.archive", "dump-w-oplog.archive"]) {
    it(`reproduces ${file} byte for byte`, async () => {
      const bytes = await fixture(file);
      const original = await readAll([bytes]);
      const { bytes: ours } = await rewrite(original);
      expect(ours.equals(bytes)).toBe(true);
    });
  }

  for (const file of Object.keys(EXPECTED).filter(
    (f) => f.startsWith("pbm_") || f.startsWith("timeseries"),
  )) {
    it(`computes the same CRCs as the real archive for the same documents (${file})`, async () => {
      const original = await readAll([await fixture(file)]);
      const { bytes, written } = await rewrite(original);
      for (const end of original.ends)
        expect(written.get(namespaceName(end.db, end.collection))).toBe(end.crc);
      const again = await readAll([bytes]);
      expect(again.ends).toEqual(original.ends);
      expect(again.docs).toEqual(original.docs);
      expect(again.reader.namespaces).toEqual(original.reader.namespaces);
      expect(again.reader.header).toEqual(original.reader.header);
    });
  }

  it("round trips documents and metadata, with concurrent namespaces interleaved", async () => {
    const meta = (
      collectionName: string,
      type: "collection" | "view" | "timeseries" = "collection",
    ): string =>
      metadataJson({
        options: type === "view" ? { viewOn: "a", pipeline: [] } : {},
        indexes: type === "view" ? [] : [{ v: new Int32(2), key: { _id: new Int32(1) }, name: "_id_" }],
        uuid: type === "view" ? undefined : "0123456789abcdef0123456789abcdef",
        collectionName,
        type,
      });
    const input: Record<string, Buffer[]> = {
      "shop.a": [...makeDocs("a", 300, 50)],
      "shop.caf\u00e9 s": [...makeDocs("b", 200, 500)],
      "other.empty": [],
      oplog: [...makeDocs("op", 40)],
    };
    const namespaces: ArchiveNamespaceInput[] = [
      { db: "shop", collection: "a", metadataJson: meta("a") },
      { db: "shop", collection: "caf\u00e9 s", metadataJson: meta("caf\u00e9 s") },
      { db: "shop", collection: "v", metadataJson: meta("v", "view") },
      { db: "other", collection: "empty", metadataJson: meta("empty") },
      { db: "", collection: "oplog", metadataJson: "" },
    ];
    const { sink, bytes } = collector();
    const writer = new ArchiveWriter(sink, {
      serverVersion: "7.0.16",
      toolVersion: "test",
      segmentBytes: 4096,
      concurrentCollections: 2,
    });
    await writer.addNamespaces(namespaces);
    const slow = async function* (docs: Buffer[]): AsyncGenerator<Buffer> {
      for (const doc of docs) {
        await new Promise((resolve) => setImmediate(resolve));
        yield doc;
      }
    };
    const results = await Promise.all([
      writer.writeDocuments("shop", "a", slow(input["shop.a"])),
      writer.writeDocuments("shop", "caf\u00e9 s", slow(input["shop.caf\u00e9 s"])),
      writer.writeDocuments("other", "empty", []),
      writer.writeDocuments("", "oplog", slow(input.oplog)),
    ]);
    await writer.finish();
    expect(results.map((r) => r.documents)).toEqual([300, 200, 0, 40]);
    expect(results[0].segments).toBeGreaterThan(1);
    expect(results[2].crc).toBe(0n);

    const read = await readAll([bytes()]);
    expect(read.reader.header).toEqual({
      concurrentCollections: 2,
      version: "0.1",
      serverVersion: "7.0.16",
      toolVersion: "test",
    });
    expect(read.reader.namespaces.map((n) => [n.db, n.collection, n.metadataJson, n.type])).toEqual(
      namespaces.map((n) => [
        n.db,
        n.collection,
        n.metadataJson,
        n.metadataJson === "" ? "" : n.collection === "v" ? "view" : "collection",
      ]),
    );
    for (const ns of read.reader.namespaces) {
      if (ns.metadataJson !== "") expect(ns.metadata).toEqual(parseMetadataJson(ns.metadataJson));
    }
    for (const [name, docs] of Object.entries(input)) {
      const got = read.docs.get(name) ?? [];
      expect(got.length).toBe(docs.length);
      got.forEach((doc, i) => expect(doc.equals(docs[i])).toBe(true));
    }
    // Segments of the namespaces written at once interleave.
    expect(read.order.filter((n) => n === "shop.a").length).toBeGreaterThan(1);
    expect(new Set(read.order.slice(0, 4)).size).toBeGreaterThan(1);
    expect(read.ends.map((e) => e.crc)).toEqual(
      read.ends.map((e) => results.find((r) => r.db === e.db && r.collection === e.collection)!.crc),
    );
  });

  it("writes and reads gzipped archives (--archive --gzip)", async () => {
    const original = await readAll([await fixture("dump-w-oplog.archive")]);
    const { bytes } = await rewrite(original, { gzip: true });
    expect(bytes.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
    expect(gunzipSync(bytes).equals(await fixture("dump-w-oplog.archive"))).toBe(true);
    const read = await readAll([bytes]);
    expect(read.reader.gzip).toBe(true);
    expect(read.docs).toEqual(original.docs);
    expect(read.ends).toEqual(original.ends);

    // A real archive gzipped by gzip itself, read in small chunks.
    const gz = gzipSync(await fixture("pbm_disttxn_4x__2022-02-09T12.42.32Z_rs2.dump.archive"));
    const chunks = Array.from({ length: Math.ceil(gz.length / 333) }, (_, i) =>
      gz.subarray(i * 333, i * 333 + 333),
    );
    const fromGzip = await readAll(chunks);
    expect(
      fromGzip.ends.map((e) => [namespaceName(e.db, e.collection), e.documents, e.crc.toString()]),
    ).toEqual(EXPECTED["pbm_disttxn_4x__2022-02-09T12.42.32Z_rs2.dump.archive"].namespaces);
  });

  it("waits for a slow sink: memory stays bounded by a segment", async () => {
    let consumed = 0;
    const sink = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, _enc, cb) {
        consumed += chunk.length;
        setTimeout(cb, 1);
      },
    });
    const writer = new ArchiveWriter(sink, { segmentBytes: 8192 });
    await writer.addNamespaces([
      {
        db: "d",
        collection: "c",
        metadataJson: metadataJson({ options: {}, indexes: [], collectionName: "c", type: "collection" }),
      },
    ]);
    let produced = 0;
    let maxAhead = 0;
    const source = function* (): Generator<Buffer> {
      for (const doc of makeDocs("d", 400, 200)) {
        produced += doc.length;
        maxAhead = Math.max(maxAhead, produced - consumed);
        yield doc;
      }
    };
    await writer.writeDocuments("d", "c", source());
    await writer.finish();
    expect(consumed).toBe(writer.bytesWritten);
    expect(maxAhead).toBeLessThan(8192 + 1024 + 2 * 400 + 4096);
  });

  it("refuses what it cannot write", async () => {
    const writer = new ArchiveWriter(new PassThrough());
    const meta = (collectionName: string, type: "collection" | "view" | "timeseries"): string =>
      metadataJson({ options: {}, indexes: [], collectionName, type });
    await expect(writer.writeDocuments("d", "c", [])).rejects.toMatchObject({ code: "INVALID_INPUT" });
    await writer.addNamespaces([
      { db: "d", collection: "c", metadataJson: meta("c", "collection") },
      { db: "d", collection: "v", metadataJson: meta("v", "view") },
      { db: "d", collection: "ts", metadataJson: meta("ts", "timeseries") },
    ]);
    await expect(writer.writeDocuments("d", "x", [])).rejects.toThrow(/not in the prelude/);
    await expect(writer.writeDocuments("d", "v", [])).rejects.toThrow(/view has no documents/);
    await expect(writer.writeDocuments("d", "ts", [])).rejects.toThrow(/system\.buckets\.ts/);
    await expect(writer.writeDocuments("d", "c", [Buffer.from([5, 0, 0, 0, 1])])).rejects.toThrow(
      /document 0 is not BSON/,
    );
    await expect(writer.finish()).rejects.toThrow(/were not written/);
    await expect(
      new ArchiveWriter(new PassThrough()).addNamespaces([
        { db: "d", collection: "c", metadataJson: meta("other", "collection") },
      ]),
    ).rejects.toThrow(/names collection "other"/);
  });
});

describe("an archive equals the directory dump it was made from", () => {
  it("ts_dump: metadata text and every collection's bytes", async () => {
    const root = join(FIXTURES, "ts_dump");
    // Read the directory dump: <db>/<escaped coll>.metadata.json and <escaped coll>.bson.
    const namespaces: ArchiveNamespaceInput[] = [];
    const data = new Map<string, Buffer>(); // "db.collection" of the data -> .bson bytes
    for (const db of (await readdir(root)).sort()) {
      for (const file of (await readdir(join(root, db))).sort()) {
        if (file.endsWith(".metadata.json")) {
          const text = await readFile(join(root, db, file), "utf8");
          const collection = parseMetadataJson(
            text,
            queryUnescape(file.slice(0, -".metadata.json".length)),
          ).collectionName;
          namespaces.push({ db, collection, metadataJson: text });
        } else if (file.endsWith(".bson")) {
          data.set(
            `${db}.${queryUnescape(file.slice(0, -".bson".length))}`,
            await readFile(join(root, db, file)),
          );
        }
      }
    }
    const { sink, bytes } = collector();
    const writer = new ArchiveWriter(sink, { serverVersion: "5.0.0-rc0" });
    await writer.addNamespaces(namespaces);
    for (const [name, content] of data) {
      const dot = name.indexOf(".");
      await writer.writeDocuments(name.slice(0, dot), name.slice(dot + 1), splitBson(content));
    }
    await writer.finish();

    const read = await readAll([bytes()]);
    for (const ns of namespaces) {
      const got = read.reader.namespaces.find((n) => n.db === ns.db && n.collection === ns.collection)!;
      expect(got.metadataJson).toBe(ns.metadataJson);
    }
    expect(read.ends).toHaveLength(data.size);
    for (const [name, content] of data) {
      expect(Buffer.concat(read.docs.get(name) ?? []).equals(content)).toBe(true);
    }

    // The real mongodump archive of the same collections has the same namespaces and metadata.
    const real = await readAll([await fixture("timeseries-dump.archive")]);
    const shape = (r: ReadResult): unknown =>
      r.reader.namespaces
        .map((n) => ({ ns: namespaceName(n.db, n.collection), kind: n.kind, data: n.dataCollection }))
        .sort((a, b) => a.ns.localeCompare(b.ns));
    expect(shape(read)).toEqual(shape(real));
    const fooTs = (r: ReadResult): string =>
      r.reader.namespaces.find((n) => n.collection === "foo_ts")!.metadataJson;
    expect(fooTs(read)).toBe(fooTs(real));
    expect([...read.docs.keys()].sort()).toEqual([...real.docs.keys()].sort());
    expect(read.docs.get("timeseries_test.system.buckets.foo_ts")).toHaveLength(10);
  });
});

function splitBson(content: Buffer): Buffer[] {
  const docs: Buffer[] = [];
  for (let pos = 0; pos < content.length; pos += content.readInt32LE(pos)) {
    docs.push(content.subarray(pos, pos + content.readInt32LE(pos)));
  }
  return docs;
}

describe("damaged archives", () => {
  /** Offset of the first document of `name` in an archive, and the document. */
  async function firstDocument(bytes: Buffer, name: string): Promise<ArchiveDocumentEvent> {
    const reader = await openArchive([bytes]);
    for await (const event of reader) {
      if (event.kind === "document" && namespaceName(event.db, event.collection) === name) return event;
    }
    throw new Error(`no document of ${name}`);
  }

  it("a flipped byte in a document is a CRC error naming the namespace", async () => {
    const bytes = await fixture("dump-w-oplog.archive");
    const event = await firstDocument(bytes, "test.foo");
    // Flip a bit of a fixed-size value, so the document stays valid BSON.
    const element = [...elements(event.doc)].find((e) => [0x01, 0x07, 0x10, 0x12].includes(e.type))!;
    const damaged = Buffer.from(bytes);
    damaged[event.offset + element.valueStart] ^= 0x01;
    const err = await readError([damaged]);
    expect(err.code).toBe("CRC");
    expect(err.namespace).toBe("test.foo");
    expect(err.message).toMatch(/"test\.foo".*CRC-64 mismatch/);

    // The same inside a gzipped archive.
    const gzErr = await readError([gzipSync(damaged)]);
    expect(gzErr.code).toBe("CRC");
    expect(gzErr.namespace).toBe("test.foo");

    // A flipped CRC in the EOF block is caught as well.
    const real = await fixture("pbm_disttxn_50__2022-02-07T14.05.59Z_rs1.dump.archive");
    const eof = real.indexOf(Buffer.from("CRC\0", "latin1"), 5883); // EOF block of admin.system.users
    const badCrc = Buffer.from(real);
    badCrc[eof + 4] ^= 0x80;
    expect((await readError([badCrc])).namespace).toBe("admin.system.users");
  });

  it("malformed BSON names the byte offset and the namespace", async () => {
    const bytes = await fixture("dump-w-oplog.archive");
    const event = await firstDocument(bytes, "test.foo");
    const badType = Buffer.from(bytes);
    badType[event.offset + 4] = 0x99; // the first element's type byte
    const err = await readError([badType]);
    expect(err.code).toBe("MALFORMED");
    expect(err.namespace).toBe("test.foo");
    expect(err.offset).toBe(event.offset);
    expect(err.message).toContain(`byte ${event.offset}`);
    expect(err.message).toMatch(/not valid BSON/);

    const badLength = Buffer.from(bytes);
    badLength.writeInt32LE(3, event.offset);
    const lengthErr = await readError([badLength]);
    expect(lengthErr).toMatchObject({ code: "MALFORMED", offset: event.offset, collection: "foo" });
    expect(lengthErr.message).toMatch(/bad BSON length 3/);
  });

  it("a truncated archive is a clear error", async () => {
    const bytes = await fixture("dump-w-oplog.archive");
    const event = await firstDocument(bytes, "test.foo");
    const cases: Array<[number, RegExp]> = [
      [2, /not a mongodump archive/],
      [50, /ends inside the archive header \(113 bytes from byte 4\)/],
      [400, /ends inside a prelude entry/],
      [event.offset + 10, /ends inside a document \(\d+ bytes from byte \d+\)/],
      [event.offset, /ends inside a segment/],
      [bytes.length - 4, /ends after the EOF block/],
      [bytes.length - 59, /ends before the EOF block of 1 namespace\(s\): "oplog"/],
    ];
    for (const [length, message] of cases) {
      const err = await readError([bytes.subarray(0, length)]);
      expect(err.code, `cut at ${length}`).toBe(length === 2 ? "BAD_MAGIC" : "TRUNCATED");
      expect(err.message, `cut at ${length}`).toMatch(message);
    }
    const inDoc = await readError([bytes.subarray(0, event.offset + 10)]);
    expect(inDoc.namespace).toBe("test.foo");

    const gz = gzipSync(bytes);
    const gzErr = await readError([gz.subarray(0, gz.length - 100)]);
    expect(gzErr.code).toBe("TRUNCATED");
  });

  it("not an archive", async () => {
    expect((await readError([Buffer.from("hello world")])).code).toBe("BAD_MAGIC");
    expect((await readError([])).code).toBe("BAD_MAGIC");
    expect((await readError([gzipSync(Buffer.from("hello world"))])).message).toMatch(/after gunzip/);
    const json = Buffer.from(EJSON.stringify({ a: 1 }));
    expect((await readError([json])).message).toMatch(/starts with 7b 22 61 22/);
  });
});

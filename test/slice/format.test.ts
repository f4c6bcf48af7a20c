import { randomBytes } from "node:crypto";
import { crc32 } from "node:zlib";
import { Binary, deserialize, Double, Int32, Long, ObjectId, serialize, Timestamp } from "bson";
import { describe, expect, it } from "vitest";
import { CODECS, compress } from "../../src/slice/codecs.js";
import { SliceError, type SliceErrorCode } from "../../src/slice/errors.js";
import {
  assembleSlice,
  decodeSlice,
  encodeSlice,
  encodeSliceBody,
  readSliceHeader,
  sha256,
  type SliceHeader,
  type SliceHeaderFields,
} from "../../src/slice/format.js";
import { ALL_TYPES, fixtureBytes, fixtureDocuments, OPLOG_50, SAMPLE } from "./fixtures.js";

const createdAt = new Date("2024-05-01T12:00:00.000Z");

const documentsFields: SliceHeaderFields = {
  kind: "documents",
  deployment: "dep-1",
  stream: "documents/shop.orders",
  sequence: 0,
  namespace: "shop.orders",
  createdAt,
};

const oplogFields: SliceHeaderFields = {
  kind: "oplog",
  deployment: "dep-1",
  stream: "oplog",
  sequence: 7,
  createdAt,
};

function errorCode(fn: () => unknown): SliceErrorCode | undefined {
  try {
    fn();
  } catch (error) {
    if (error instanceof SliceError) return error.code;
    throw error;
  }
  return undefined;
}

function headerLength(slice: Buffer): number {
  return slice.readUInt32LE(8);
}

function flipped(slice: Buffer, offset: number): Buffer {
  const copy = Buffer.from(slice);
  copy[offset] ^= 0x01;
  return copy;
}

describe("slice layout (format version 1)", () => {
  const documents = fixtureDocuments(SAMPLE);
  const slice = encodeSlice(documentsFields, documents, "zstd");

  it("starts with the magic, the version byte and the header length", () => {
    expect(slice.subarray(0, 7).toString("latin1")).toBe("TDMKSLC");
    expect(slice[7]).toBe(0x01);
    const n = headerLength(slice);
    const header = slice.subarray(12, 12 + n);
    expect(header.readInt32LE(0)).toBe(n); // the header is one BSON document
    expect(slice.readUInt32LE(12 + n)).toBe(crc32(header));
  });

  it("writes the header fields in the specified order and types", () => {
    const n = headerLength(slice);
    const raw = deserialize(slice.subarray(12, 12 + n), { promoteValues: false });
    expect(Object.keys(raw)).toEqual([
      "kind",
      "deployment",
      "stream",
      "sequence",
      "namespace",
      "lastId",
      "count",
      "uncompressedSize",
      "compressedSize",
      "codec",
      "bodySha256",
      "createdAt",
    ]);
    expect(raw.sequence).toBeInstanceOf(Long);
    expect(raw.count).toBeInstanceOf(Int32);
    expect(raw.bodySha256).toBeInstanceOf(Binary);
    expect((raw.bodySha256 as Binary).length()).toBe(32);
    expect(raw.createdAt).toEqual(createdAt);
  });

  it("puts firstTs/lastTs of oplog slices after namespace and extra last", () => {
    const oplog = encodeSlice(
      { ...oplogFields, namespace: "shop.orders", extra: { note: "x" } },
      fixtureDocuments(OPLOG_50),
    );
    const raw = deserialize(oplog.subarray(12, 12 + headerLength(oplog)));
    expect(Object.keys(raw)).toEqual([
      "kind",
      "deployment",
      "stream",
      "sequence",
      "namespace",
      "firstTs",
      "lastTs",
      "count",
      "uncompressedSize",
      "compressedSize",
      "codec",
      "bodySha256",
      "createdAt",
      "extra",
    ]);
  });

  it("checksums the compressed body with SHA-256", () => {
    const header = readSliceHeader(slice);
    const body = slice.subarray(16 + headerLength(slice));
    expect(body.length).toBe(header.compressedSize);
    expect(sha256(body).equals(header.bodySha256)).toBe(true);
  });
});

describe("round trips", () => {
  const sets = { sample: SAMPLE, allTypes: ALL_TYPES, oplog: OPLOG_50 };
  for (const codec of CODECS) {
    for (const [name, file] of Object.entries(sets)) {
      it(`${codec}: ${name}`, () => {
        const documents = fixtureDocuments(file);
        const fields = file === OPLOG_50 ? oplogFields : documentsFields;
        const slice = encodeSlice(fields, documents, codec);
        const decoded = decodeSlice(slice);
        expect(decoded.header.codec).toBe(codec);
        expect(decoded.header.count).toBe(documents.length);
        expect(decoded.header.uncompressedSize).toBe(fixtureBytes(file).length);
        expect(decoded.header.sequence).toBe(fields.sequence);
        expect(decoded.header.deployment).toBe("dep-1");
        expect(decoded.header.createdAt).toEqual(createdAt);
        expect(decoded.body.equals(fixtureBytes(file))).toBe(true);
        const back = [...decoded.documents()];
        expect(back.length).toBe(documents.length);
        back.forEach((doc, i) => expect(doc.equals(documents[i])).toBe(true));
      });
    }
  }

  it("an uncompressed body is the input bytes, i.e. a mongodump .bson file", () => {
    const file = fixtureBytes(ALL_TYPES);
    const slice = encodeSlice(documentsFields, fixtureDocuments(ALL_TYPES), "none");
    expect(slice.subarray(16 + headerLength(slice)).equals(file)).toBe(true);
    expect(decodeSlice(slice).body.equals(file)).toBe(true);
  });

  it("takes firstTs/lastTs from the first and last oplog entries", () => {
    const entries = fixtureDocuments(OPLOG_50);
    const header = readSliceHeader(encodeSlice(oplogFields, entries));
    const ts = (doc: Buffer) => deserialize(doc).ts as Timestamp;
    expect(header.firstTs?.equals(ts(entries[0]))).toBe(true);
    expect(header.lastTs?.equals(ts(entries[entries.length - 1]))).toBe(true);
    expect(header.lastId).toBeUndefined();
  });

  it("takes lastId from the last document", () => {
    const documents = fixtureDocuments(SAMPLE);
    const header = readSliceHeader(encodeSlice(documentsFields, documents));
    expect(header.lastId).toEqual(deserialize(documents[documents.length - 1])._id);
    expect(header.lastId).toBeInstanceOf(ObjectId);
    expect(header.firstTs).toBeUndefined();
  });

  it("keeps lastId's exact BSON type", () => {
    const cases: Array<[unknown, unknown]> = [
      [new Int32(7), Int32],
      [new Double(7), Double],
      [Long.fromNumber(7), Long],
      ["seven", String],
    ];
    for (const [id, type] of cases) {
      const header = readSliceHeader(encodeSlice(documentsFields, [serialize({ _id: id, v: 1 })]));
      if (type === String) expect(header.lastId).toBe("seven");
      else expect(header.lastId).toBeInstanceOf(type as new (...args: never[]) => unknown);
      expect(String(header.lastId)).toBe(String(id));
    }
    // A document _id keeps its field types too: {a: int32 1, b: double 1.0}.
    const nested = serialize({ _id: { a: new Int32(1), b: new Double(1) } });
    const header = readSliceHeader(encodeSlice(documentsFields, [serialize({ _id: 0 }), nested]));
    const reencoded = Buffer.from(serialize({ _id: header.lastId }));
    expect(reencoded.equals(serialize({ _id: { a: new Int32(1), b: new Double(1) } }))).toBe(true);
  });

  it("uses the given optimes and lastId instead of computing them", () => {
    const firstTs = new Timestamp({ t: 1, i: 2 });
    const header = readSliceHeader(
      encodeSlice({ ...oplogFields, firstTs, lastTs: firstTs }, fixtureDocuments(OPLOG_50)),
    );
    expect(header.firstTs?.equals(firstTs)).toBe(true);
    expect(header.lastTs?.equals(firstTs)).toBe(true);
  });

  it("tracks optimes or lastId on request for other kinds", () => {
    const header = readSliceHeader(
      encodeSlice(
        { kind: "missing", deployment: "d", stream: "missing/r1", sequence: 0 },
        fixtureDocuments(SAMPLE),
        "zstd",
        { trackLastId: true },
      ),
    );
    expect(header.lastId).toBeInstanceOf(ObjectId);
  });

  it("keeps extra with exact types", () => {
    const extra = {
      options: { capped: true, size: new Int32(4096) },
      indexes: [{ key: { a: new Double(1) } }],
    };
    const header = readSliceHeader(
      encodeSlice({ kind: "catalog", deployment: "d", stream: "catalog/shop", sequence: 3, extra }, []),
    );
    expect(Buffer.from(serialize(header.extra!)).equals(serialize(extra))).toBe(true);
  });

  it("encodes an empty slice", () => {
    for (const codec of CODECS) {
      const decoded = decodeSlice(encodeSlice(oplogFields, [], codec));
      expect(decoded.header.count).toBe(0);
      expect(decoded.header.firstTs).toBeUndefined();
      expect([...decoded.documents()]).toEqual([]);
    }
  });

  it("stores large sequence numbers as int64", () => {
    const header = readSliceHeader(encodeSlice({ ...oplogFields, sequence: 2 ** 40 }, []));
    expect(header.sequence).toBe(2 ** 40);
  });

  it("refuses input that is not whole BSON documents", () => {
    const doc = fixtureDocuments(SAMPLE)[0];
    expect(errorCode(() => encodeSlice(documentsFields, [doc.subarray(0, doc.length - 1)]))).toBe(
      "MALFORMED_BSON",
    );
    expect(errorCode(() => encodeSlice(documentsFields, [Buffer.concat([doc, doc])]))).toBe("MALFORMED_BSON");
  });

  it("refuses oplog entries without ts", () => {
    expect(errorCode(() => encodeSlice(oplogFields, fixtureDocuments(SAMPLE)))).toBe("MALFORMED_BSON");
  });

  it("encodeSliceBody makes the same slice from the concatenated documents, and keeps none of them", () => {
    for (const [fields, file] of [
      [documentsFields, SAMPLE],
      [oplogFields, OPLOG_50],
    ] as const) {
      for (const codec of CODECS) {
        const body = Buffer.from(fixtureBytes(file));
        const slice = encodeSliceBody(fields, body, codec);
        expect(slice.equals(encodeSlice(fields, fixtureDocuments(file), codec))).toBe(true);
        body.fill(0); // the caller reuses its buffer: the slice must not change
        expect(decodeSlice(slice).body.equals(fixtureBytes(file))).toBe(true);
      }
    }
    expect(readSliceHeader(encodeSliceBody(documentsFields, Buffer.alloc(0))).count).toBe(0);
    const doc = fixtureDocuments(SAMPLE)[0];
    expect(errorCode(() => encodeSliceBody(documentsFields, Buffer.concat([doc, doc.subarray(0, 9)])))).toBe(
      "MALFORMED_BSON",
    );
  });
});

describe("corruption", () => {
  const slice = encodeSlice(oplogFields, fixtureDocuments(OPLOG_50), "zstd");
  const n = headerLength(slice);
  const bodyOffset = 16 + n;

  it("a flipped magic byte is BAD_MAGIC", () => {
    for (let i = 0; i < 7; i++) expect(errorCode(() => decodeSlice(flipped(slice, i)))).toBe("BAD_MAGIC");
    expect(errorCode(() => decodeSlice(fixtureBytes(SAMPLE)))).toBe("BAD_MAGIC");
  });

  it("another version byte is UNSUPPORTED_VERSION", () => {
    for (const version of [0, 2, 0xff]) {
      const copy = Buffer.from(slice);
      copy[7] = version;
      expect(errorCode(() => decodeSlice(copy))).toBe("UNSUPPORTED_VERSION");
    }
  });

  it("any flipped header byte is HEADER_CHECKSUM", () => {
    for (let i = 12; i < 12 + n; i++) {
      expect(errorCode(() => readSliceHeader(flipped(slice, i)))).toBe("HEADER_CHECKSUM");
    }
  });

  it("any flipped header CRC byte is HEADER_CHECKSUM", () => {
    for (let i = 12 + n; i < bodyOffset; i++) {
      expect(errorCode(() => decodeSlice(flipped(slice, i)))).toBe("HEADER_CHECKSUM");
    }
  });

  it("a damaged header length is TRUNCATED or HEADER_CHECKSUM", () => {
    for (let i = 8; i < 12; i++) {
      expect(["TRUNCATED", "HEADER_CHECKSUM"]).toContain(errorCode(() => decodeSlice(flipped(slice, i))));
    }
  });

  it("any flipped body byte is BODY_CHECKSUM", () => {
    for (let i = bodyOffset; i < slice.length; i++) {
      expect(errorCode(() => decodeSlice(flipped(slice, i)))).toBe("BODY_CHECKSUM");
    }
  });

  it("a slice cut short anywhere is TRUNCATED", () => {
    for (let length = 0; length < slice.length; length++) {
      expect(errorCode(() => decodeSlice(slice.subarray(0, length)))).toBe("TRUNCATED");
    }
  });

  it("readSliceHeader needs only the bytes up to the end of the header", () => {
    expect(readSliceHeader(slice.subarray(0, bodyOffset)).count).toBe(124);
    expect(errorCode(() => readSliceHeader(slice.subarray(0, bodyOffset - 1)))).toBe("TRUNCATED");
  });

  it("bytes after the body are SIZE_MISMATCH", () => {
    expect(errorCode(() => decodeSlice(Buffer.concat([slice, Buffer.from([0])])))).toBe("SIZE_MISMATCH");
  });

  // The cases below have a consistent header and body checksum, as a buggy writer would produce.
  const header = readSliceHeader(slice);
  const compressedBody = slice.subarray(bodyOffset);
  const reframe = (changes: Partial<SliceHeader>, body: Buffer = compressedBody) =>
    assembleSlice({ ...header, compressedSize: body.length, bodySha256: sha256(body), ...changes }, body);

  it("a wrong count is COUNT_MISMATCH", () => {
    expect(errorCode(() => decodeSlice(reframe({ count: 123 })))).toBe("COUNT_MISMATCH");
    expect(errorCode(() => decodeSlice(reframe({ count: 125 })))).toBe("COUNT_MISMATCH");
    expect(decodeSlice(reframe({}))).toBeDefined();
  });

  it("a body that decompresses to garbage is MALFORMED_BSON", () => {
    const garbage = randomBytes(5000);
    garbage.writeInt32LE(1_000_000, 0); // a first "length" that overruns the body
    expect(errorCode(() => decodeSlice(reframe({ uncompressedSize: 5000 }, compress("zstd", garbage))))).toBe(
      "MALFORMED_BSON",
    );
    const documents = fixtureBytes(OPLOG_50);
    const cut = documents.subarray(0, documents.length - 3); // last document incomplete
    expect(
      errorCode(() => decodeSlice(reframe({ uncompressedSize: cut.length }, compress("zstd", cut)))),
    ).toBe("MALFORMED_BSON");
    const unterminated = Buffer.from(documents);
    unterminated[unterminated.length - 1] = 1;
    expect(
      errorCode(() =>
        decodeSlice(reframe({ uncompressedSize: unterminated.length }, compress("zstd", unterminated))),
      ),
    ).toBe("MALFORMED_BSON");
  });

  it("a body the codec cannot read is DECOMPRESS", () => {
    const notZstd = Buffer.from("definitely not a zstd frame");
    expect(errorCode(() => decodeSlice(reframe({}, notZstd)))).toBe("DECOMPRESS");
    expect(errorCode(() => decodeSlice(reframe({ codec: "lz4" as never })))).toBe("DECOMPRESS");
  });

  it("a body larger than declared is SIZE_MISMATCH (bounded decompression)", () => {
    const bomb = compress("zstd", Buffer.alloc(32 * 1024 * 1024));
    expect(errorCode(() => decodeSlice(reframe({ uncompressedSize: 1000 }, bomb)))).toBe("SIZE_MISMATCH");
    expect(errorCode(() => decodeSlice(reframe({ uncompressedSize: header.uncompressedSize - 1 })))).toBe(
      "SIZE_MISMATCH",
    );
  });

  it("a declared size above the limit is refused before decompressing", () => {
    expect(errorCode(() => decodeSlice(slice, { maxUncompressedSize: 1000 }))).toBe("SIZE_MISMATCH");
  });

  it("messages say what is wrong and what it means", () => {
    try {
      decodeSlice(flipped(slice, bodyOffset + 3));
      expect.unreachable();
    } catch (error) {
      expect((error as Error).message).toMatch(/SHA-256/);
      expect((error as Error).message).toMatch(/the agent re-sends it/);
    }
  });
});

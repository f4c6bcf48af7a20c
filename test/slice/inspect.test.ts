import { deserialize, Int32, Long, serialize, Timestamp } from "bson";
import { describe, expect, it } from "vitest";
import { compress } from "../../src/slice/codecs.js";
import { assembleSlice, encodeSlice, readSliceHeader, sha256 } from "../../src/slice/format.js";
import { inspectSlice } from "../../src/slice/inspect.js";
import { fixtureBytes, fixtureDocuments, OPLOG_50, SAMPLE } from "./fixtures.js";

const createdAt = new Date("2024-05-01T12:00:00.000Z");

describe("inspectSlice", () => {
  const entries = fixtureDocuments(OPLOG_50);
  const oplogSlice = encodeSlice(
    { kind: "oplog", deployment: "dep-1", stream: "oplog", sequence: 5, createdAt },
    entries,
    "zstd",
  );

  it("summarises an intact oplog slice, optimes read from the entries", () => {
    const summary = inspectSlice(oplogSlice);
    const first = deserialize(entries[0]);
    const last = deserialize(entries[entries.length - 1]);
    const tsJson = (ts: Timestamp) => ({ t: ts.t, i: ts.i });
    expect(summary.status).toBe("ok");
    expect(summary.error).toBeUndefined();
    expect(summary.fileBytes).toBe(oplogSlice.length);
    expect(summary.documents).toBe(124);
    expect(summary.header).toMatchObject({
      kind: "oplog",
      deployment: "dep-1",
      stream: "oplog",
      sequence: 5,
      count: 124,
      codec: "zstd",
      uncompressedSize: fixtureBytes(OPLOG_50).length,
      createdAt: "2024-05-01T12:00:00.000Z",
      firstTs: tsJson(first.ts),
      lastTs: tsJson(last.ts),
    });
    expect(summary.header!.bodySha256).toMatch(/^[0-9a-f]{64}$/);
    expect(summary.firstOptime).toEqual({ ts: tsJson(first.ts), t: Number(first.t) });
    expect(summary.lastOptime).toEqual({ ts: tsJson(last.ts), t: Number(last.t) });
    expect(summary.sizes!.uncompressed).toBe(fixtureBytes(OPLOG_50).length);
    expect(summary.sizes!.compressed).toBe(readSliceHeader(oplogSlice).compressedSize);
    expect(summary.sizes!.ratio).toBeGreaterThan(2);
  });

  it("is plain JSON", () => {
    const summary = inspectSlice(oplogSlice);
    expect(JSON.parse(JSON.stringify(summary))).toEqual(summary);
  });

  it("shows lastId and extra as canonical Extended JSON", () => {
    const documents = [serialize({ _id: new Int32(6) }), serialize({ _id: new Int32(7), x: 1 })];
    const slice = encodeSlice(
      {
        kind: "documents",
        deployment: "d",
        stream: "documents/a.b",
        sequence: 0,
        extra: { n: Long.fromNumber(3) },
      },
      documents,
    );
    const summary = inspectSlice(slice);
    expect(summary.header!.lastId).toEqual({ $numberInt: "7" });
    expect(summary.header!.extra).toEqual({ n: { $numberLong: "3" } });
    expect(summary.firstOptime).toBeUndefined();
    const sample = inspectSlice(
      encodeSlice(
        { kind: "documents", deployment: "d", stream: "documents/a.b", sequence: 0 },
        fixtureDocuments(SAMPLE),
      ),
    );
    expect(sample.header!.lastId).toEqual({ $oid: "546652254bf6e4cb017c5315" });
  });

  it("reports header damage with no header", () => {
    const damaged = Buffer.from(oplogSlice);
    damaged[20] ^= 0xff;
    const summary = inspectSlice(damaged);
    expect(summary.status).toBe("HEADER_CHECKSUM");
    expect(summary.error!.code).toBe("HEADER_CHECKSUM");
    expect(summary.error!.message).toMatch(/CRC-32/);
    expect(summary.header).toBeUndefined();
  });

  it("reports body damage with the header still shown", () => {
    const damaged = Buffer.from(oplogSlice);
    damaged[damaged.length - 10] ^= 0xff;
    const summary = inspectSlice(damaged);
    expect(summary.status).toBe("BODY_CHECKSUM");
    expect(summary.header!.count).toBe(124);
    expect(summary.documents).toBeUndefined();
  });

  it("reports the real count on COUNT_MISMATCH", () => {
    const header = readSliceHeader(oplogSlice);
    const body = compress("zstd", fixtureBytes(OPLOG_50));
    const slice = assembleSlice(
      { ...header, count: 200, compressedSize: body.length, bodySha256: sha256(body) },
      body,
    );
    const summary = inspectSlice(slice);
    expect(summary.status).toBe("COUNT_MISMATCH");
    expect(summary.header!.count).toBe(200);
    expect(summary.documents).toBe(124);
  });

  it("reports a file that is not a slice", () => {
    expect(inspectSlice(fixtureBytes(SAMPLE)).status).toBe("BAD_MAGIC");
    expect(inspectSlice(Buffer.alloc(0)).status).toBe("TRUNCATED");
  });
});

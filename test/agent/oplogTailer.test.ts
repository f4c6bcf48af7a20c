/**
 * The oplog tailer against the emulator through the driver, into a collecting sink: every entry
 * from T0 exactly once and byte for byte; slices cut by size and by time; resuming at the last
 * acknowledged ts (which must still be there, and is skipped); a gap when it is not, or when the
 * cursor loses its position (CappedPositionLost); connections cut mid-tail.
 */
import type { MongoClient } from "mongodb";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { OplogGapError, StoppedError } from "../../src/agent/errors.js";
import { createLogger } from "../../src/agent/logger.js";
import { newestOplogOpTime, oldestOplogOpTime } from "../../src/agent/oplogQueries.js";
import { OplogTailer, type TailStart } from "../../src/agent/oplogTailer.js";
import { compareOpTimes, toTimestamp } from "../../src/protocol/optime.js";
import { readOpTime } from "../../src/agent/rawBson.js";
import { createSourceClient } from "../../src/agent/sourceClient.js";
import type { OpTimeJson } from "../../src/protocol/agentProtocol.js";
import { readSliceHeader } from "../../src/slice/format.js";
import { withEmulator, type AnyDoc, type EmulatorFixture } from "../helpers/emulator.js";
import { CollectingSink } from "./collectingSink.js";

const FAST = { initialMs: 5, maxMs: 50 };

async function oplogFrom(client: MongoClient, from: OpTimeJson, to?: OpTimeJson): Promise<Buffer[]> {
  const range = to ? { $gte: toTimestamp(from), $lte: toTimestamp(to) } : { $gte: toTimestamp(from) };
  const docs = await client.db("local").collection("oplog.rs").find({ ts: range }, { raw: true }).toArray();
  return (docs as unknown as Uint8Array[]).map((doc) => Buffer.from(doc));
}

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function lastTsIn(sink: CollectingSink): OpTimeJson | undefined {
  const docs = sink.documents("oplog");
  return docs.length ? readOpTime(docs[docs.length - 1]) : undefined;
}

describe("OplogTailer", () => {
  let fx: EmulatorFixture;
  let client: MongoClient;
  const running: Array<{ controller: AbortController; done: Promise<unknown> }> = [];

  beforeAll(async () => {
    fx = await withEmulator();
    client = createSourceClient({ uri: fx.emulator.uri });
    await client.connect();
    await fx.client.db("app").collection<AnyDoc>("events").insertOne({ _id: "first" });
  });
  afterEach(async () => {
    for (const { controller, done } of running.splice(0)) {
      controller.abort();
      await done.catch(() => {});
    }
    fx.emulator.faults.clear();
  });
  afterAll(async () => {
    await client?.close();
    await fx?.close();
  });

  function tail(
    sink: CollectingSink,
    start: TailStart,
    options: Partial<ConstructorParameters<typeof OplogTailer>[0]> = {},
  ) {
    const controller = new AbortController();
    const tailer = new OplogTailer({
      client,
      sink,
      deployment: "dep-1",
      codec: "snappy",
      targetBytes: 1 << 20,
      flushSeconds: 0.2,
      firstSequence: 0,
      start,
      signal: controller.signal,
      backoff: FAST,
      awaitTimeMs: 100,
      ...options,
    });
    const done = tailer.run();
    done.catch(() => {});
    running.push({ controller, done });
    return { tailer, controller, done };
  }

  async function write(count: number, tag: string): Promise<void> {
    const events = fx.client.db("app").collection<AnyDoc>("events");
    for (let i = 0; i < count; i += 10) {
      await events.insertMany(
        Array.from({ length: 10 }, (_, j) => ({ _id: `${tag}-${i + j}`, payload: "x".repeat(100) })),
      );
      await events.updateOne({ _id: `${tag}-${i}` }, { $set: { touched: true } });
      await events.deleteOne({ _id: `${tag}-${i + 1}` });
    }
  }

  it("from T0: every entry, T0's included, byte for byte and in order", async () => {
    const t0 = (await newestOplogOpTime(client))!;
    const sink = new CollectingSink();
    tail(sink, { ts: t0, alreadySent: false });
    await write(100, "t0");
    const newest = (await newestOplogOpTime(client))!;
    await waitFor(() => lastTsIn(sink) !== undefined && compareOpTimes(lastTsIn(sink)!, newest) >= 0);
    const expected = await oplogFrom(fx.client, t0, lastTsIn(sink));
    const got = sink.documents("oplog");
    expect(readOpTime(got[0])).toEqual(t0);
    expect(got.length).toBe(expected.length);
    expect(got.every((doc, i) => doc.equals(expected[i]))).toBe(true);
    const headers = sink.stream("oplog").map((s) => readSliceHeader(s.bytes));
    expect(headers.map((h) => h.sequence)).toEqual(headers.map((_, i) => i));
    expect(headers.every((h) => h.kind === "oplog" && h.codec === "snappy")).toBe(true);
  });

  it("cuts slices at the target size", async () => {
    const t0 = (await newestOplogOpTime(client))!;
    const sink = new CollectingSink();
    tail(sink, { ts: t0, alreadySent: false }, { targetBytes: 2048, codec: "none", flushSeconds: 30 });
    await write(200, "size");
    await waitFor(() => sink.stream("oplog").length >= 5);
    for (const slice of sink.stream("oplog")) expect(slice.bytes.length).toBeLessThanOrEqual(2048);
  });

  it("closes a slice within --oplog-flush-seconds of its first entry", async () => {
    const t0 = (await newestOplogOpTime(client))!;
    const sink = new CollectingSink();
    tail(sink, { ts: t0, alreadySent: false }, { flushSeconds: 0.3 });
    await waitFor(() => sink.stream("oplog").length === 1); // T0's entry alone
    const written = Date.now();
    await fx.client.db("app").collection<AnyDoc>("events").insertOne({ _id: "timed" });
    await waitFor(() => sink.stream("oplog").length === 2);
    const elapsed = Date.now() - written;
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(1500);
  });

  it("resumes at the last acknowledged ts: it must be there, and is not sent again", async () => {
    await write(20, "resume");
    const all = await oplogFrom(fx.client, (await oldestOplogOpTime(client))!);
    const resumeAt = readOpTime(all[all.length - 15])!;
    const sink = new CollectingSink();
    tail(sink, { ts: resumeAt, alreadySent: true }, { firstSequence: 7 });
    const newest = readOpTime(all[all.length - 1])!;
    await waitFor(() => lastTsIn(sink) !== undefined && compareOpTimes(lastTsIn(sink)!, newest) >= 0);
    const got = sink.documents("oplog");
    expect(got.slice(0, 14).every((doc, i) => doc.equals(all[all.length - 14 + i]))).toBe(true);
    expect(sink.stream("oplog")[0].sequence).toBe(7);
  });

  it("survives connections cut mid-tail: no entry twice, none missing", async () => {
    const t0 = (await newestOplogOpTime(client))!;
    const sink = new CollectingSink();
    const lines: string[] = [];
    tail(sink, { ts: t0, alreadySent: false }, { log: createLogger({ sink: (line) => lines.push(line) }) });
    // The writer's own connections are cut too: what it managed to write is what the tail must have.
    const writing = write(300, "cut").catch(() => {});
    for (let i = 0; i < 4; i++) {
      await new Promise((resolve) => setTimeout(resolve, 60));
      fx.emulator.faults.closeConnections();
    }
    await writing;
    await fx.client.db("app").collection<AnyDoc>("events").insertOne({ _id: "cut-last" });
    const newest = (await newestOplogOpTime(fx.client))!;
    await waitFor(() => lastTsIn(sink) !== undefined && compareOpTimes(lastTsIn(sink)!, newest) >= 0);
    const expected = await oplogFrom(fx.client, t0, lastTsIn(sink));
    const got = sink.documents("oplog");
    expect(got.length).toBe(expected.length);
    expect(got.every((doc, i) => doc.equals(expected[i]))).toBe(true);
    expect(lines.some((line) => line.includes("oplog cursor lost"))).toBe(true);
  });

  it("a resume point rolled off the oplog is a gap, with the resume point and the oldest entry", async () => {
    await write(20, "gap");
    const resumeAt = (await newestOplogOpTime(client))!;
    await write(20, "gap-after");
    fx.emulator.faults.truncateOplog(5);
    const oldest = (await oldestOplogOpTime(client))!;
    const sink = new CollectingSink();
    const { done } = tail(sink, { ts: resumeAt, alreadySent: true });
    const error = (await done.catch((e: unknown) => e)) as OplogGapError;
    expect(error).toBeInstanceOf(OplogGapError);
    expect(error.resumeTs).toEqual(resumeAt);
    expect(error.oldestTs).toEqual(oldest);
    expect(error.message).toMatch(/oplog gap: the tail must resume at \d+:\d+/);
    expect(error.message).toMatch(/new initial sync is required/);
    expect(sink.slices).toHaveLength(0);
  });

  it("a cursor that loses its position (CappedPositionLost, 136) is a gap at the current position", async () => {
    const t0 = (await newestOplogOpTime(client))!;
    const sink = new CollectingSink();
    const { tailer, done } = tail(sink, { ts: t0, alreadySent: false });
    await waitFor(() => tailer.entriesRead >= 1);
    fx.emulator.faults.failCommand("getMore", 136, 1);
    const error = (await done.catch((e: unknown) => e)) as OplogGapError;
    expect(error).toBeInstanceOf(OplogGapError);
    expect(error.resumeTs).toEqual(tailer.lastOpTime);
    expect(error.message).toMatch(/CappedPositionLost/);
  });

  it("rolling over the oplog under a caught-up tail is a gap, never a silent skip", async () => {
    const small = await withEmulator({ oplogSizeMb: 1 });
    const smallClient = createSourceClient({ uri: small.emulator.uri });
    try {
      await smallClient.connect();
      await small.client.db("a").collection<AnyDoc>("b").insertOne({ _id: 0 });
      const t0 = (await newestOplogOpTime(smallClient))!;
      const sink = new CollectingSink({ delayMs: 200 }); // a slow server: the tail falls behind
      const controller = new AbortController();
      const tailer = new OplogTailer({
        client: smallClient,
        sink,
        deployment: "dep-1",
        codec: "zstd",
        targetBytes: 64 * 1024,
        flushSeconds: 0.1,
        firstSequence: 0,
        start: { ts: t0, alreadySent: false },
        signal: controller.signal,
        backoff: FAST,
        awaitTimeMs: 50,
      });
      const done = tailer.run();
      done.catch(() => {});
      const filler = "f".repeat(4000);
      for (let i = 0; i < 12; i++) {
        await small.client
          .db("a")
          .collection<AnyDoc>("b")
          .insertMany(Array.from({ length: 50 }, (_, j) => ({ _id: `${i}-${j}`, filler })));
      }
      const error = await Promise.race([
        done.catch((e: unknown) => e),
        new Promise((resolve) => setTimeout(() => resolve("still tailing"), 15_000)),
      ]);
      controller.abort();
      expect(error).toBeInstanceOf(OplogGapError);
    } finally {
      await smallClient.close();
      await small.close();
    }
  });

  it("stops with StoppedError when aborted", async () => {
    const t0 = (await newestOplogOpTime(client))!;
    const { controller, done } = tail(new CollectingSink(), { ts: t0, alreadySent: false });
    await new Promise((resolve) => setTimeout(resolve, 150));
    controller.abort();
    await expect(done).rejects.toBeInstanceOf(StoppedError);
  });
});

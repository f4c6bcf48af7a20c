import type { MongoClient } from "mongodb";
import type { OpTimeJson } from "../protocol/agentProtocol.js";
import { readOpTime } from "./rawBson.js";

function oplog(client: MongoClient) {
  return client.db("local").collection("oplog.rs");
}

async function endOfOplog(client: MongoClient, direction: 1 | -1): Promise<OpTimeJson | undefined> {
  const [entry] = (await oplog(client)
    .find({}, { sort: { $natural: direction }, limit: 1, projection: { ts: 1 }, raw: true })
    .toArray()) as unknown as Buffer[];
  return entry ? readOpTime(entry) : undefined;
}

/** The ts of the newest oplog entry: T0 at the start of an initial sync, T1 at the end of the clone. */
export function newestOplogOpTime(client: MongoClient): Promise<OpTimeJson | undefined> {
  return endOfOplog(client, -1);
}

/** The ts of the oldest entry still in the oplog (for gap messages). */
export function oldestOplogOpTime(client: MongoClient): Promise<OpTimeJson | undefined> {
  return endOfOplog(client, 1);
}

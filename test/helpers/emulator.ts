import { MongoClient, type Document, type MongoClientOptions, type ObjectId } from "mongodb";
import { startEmulator, type RunningEmulator } from "../../src/emulator/server.js";
import type { EmulatorOptions } from "../../src/emulator/options.js";

/** A document with any `_id` type (the driver's default typing assumes ObjectId). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests write documents of any shape
export type AnyDoc = { _id?: string | number | boolean | ObjectId | Document; [field: string]: any };

/** An emulator on a free port plus a connected driver client, for one test file. */
export interface EmulatorFixture {
  emulator: RunningEmulator;
  client: MongoClient;
  close(): Promise<void>;
}

export async function withEmulator(
  options: EmulatorOptions = {},
  clientOptions: MongoClientOptions = {},
): Promise<EmulatorFixture> {
  const emulator = await startEmulator({ port: 0, log: () => {}, ...options });
  const client = new MongoClient(emulator.uri, { serverSelectionTimeoutMS: 5000, ...clientOptions });
  await client.connect();
  return {
    emulator,
    client,
    async close() {
      await client.close();
      await emulator.stop();
    },
  };
}

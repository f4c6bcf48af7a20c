// Runs a real s3rver 3.x in its own Node process for the S3 oplog store tests.
//
// Why a separate process: s3rver encrypts ListObjectsV2 continuation tokens with DES, which
// OpenSSL 3 (Node >= 17) only provides through its legacy provider. In a normal Node 20 process
// every truncated listing fails with a 500 InternalError ("digital envelope routines::unsupported"),
// so pagination could not be tested. The parent forks this file with --openssl-legacy-provider.
//
// Protocol (IPC): sends {type:"ready", port}; answers {type:"requests", from} with the requests
// received since index `from` (method, url, headers), recorded before s3rver answers them; on
// {type:"stop"} closes the server and exits.
import { createRequire } from "node:module";
import process from "node:process";

const require = createRequire(import.meta.url);
const S3rver = require("s3rver");

const server = new S3rver({ address: "127.0.0.1", port: 0, silent: true, directory: process.argv[2] });
const { port } = await server.run();
const requests = [];
server.httpServer.prependListener("request", (req) => {
  requests.push({ method: req.method, url: req.url, headers: req.headers });
});

process.on("message", async (message) => {
  if (message.type === "requests") {
    process.send({ type: "requests", requests: requests.slice(message.from) });
  } else if (message.type === "stop") {
    server.httpServer.closeAllConnections();
    await server.close();
    process.exit(0);
  }
});
// If the test process dies, do not linger.
process.on("disconnect", () => process.exit(0));

process.send({ type: "ready", port });

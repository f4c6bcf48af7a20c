import { describe, expect, it } from "vitest";
import { createLogger, describeError, redactUri } from "../../src/agent/logger.js";

describe("agent log lines", () => {
  it("redact the password of any connection string, keep the user and hosts", () => {
    expect(redactUri("mongodb://backup:s3cr%40t@db1:27017,db2:27017/?replicaSet=rs0")).toBe(
      "mongodb://backup:****@db1:27017,db2:27017/?replicaSet=rs0",
    );
    expect(redactUri("mongodb+srv://u:p@cluster.example.com/admin")).toBe(
      "mongodb+srv://u:****@cluster.example.com/admin",
    );
    expect(redactUri("mongodb://db1/?tlsCertificateKeyFilePassword=pw&replicaSet=rs0")).toBe(
      "mongodb://db1/?tlsCertificateKeyFilePassword=****&replicaSet=rs0",
    );
    expect(redactUri("mongodb://db1:27017/?replicaSet=rs0")).toBe("mongodb://db1:27017/?replicaSet=rs0");
    expect(describeError(new Error("cannot parse mongodb://a:secret@h/x"))).toBe(
      "cannot parse mongodb://a:****@h/x",
    );
  });

  it("are one line: time, level, component, message, key=value fields", () => {
    const lines: string[] = [];
    const log = createLogger({ sink: (line) => lines.push(line) }).child("clone");
    log.info("collection cloned", {
      ns: "shop.orders",
      documents: 12,
      note: "two words",
      skipped: undefined,
    });
    log.debug("not shown at info");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO {2}clone: collection cloned ns=shop\.orders documents=12 note="two words"$/,
    );
  });
});

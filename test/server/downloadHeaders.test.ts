import { describe, expect, it } from "vitest";
import { attachmentDisposition } from "../../src/server/download/contentDisposition.js";
import { fileEtag, ifRangeMatches, strongEtag } from "../../src/server/download/validators.js";

describe("ETags", () => {
  it("makes a strong tag from size and mtime, and from a given value", () => {
    expect(fileEtag(255, 4096n)).toBe('"ff-1000"');
    expect(fileEtag(255n, 4096n)).not.toBe(fileEtag(255n, 4097n));
    expect(strongEtag("abc123")).toBe('"abc123"');
    for (const bad of ['"abc"', "a b", "", "tab\t", "ü"]) {
      expect(() => strongEtag(bad), bad).toThrow(/cannot hold/);
    }
  });
});

describe("ifRangeMatches", () => {
  const etag = '"ff-1000"';
  const modified = new Date(Date.UTC(2030, 0, 1, 12, 0, 0, 250));
  const later = new Date(modified.getTime() + 60_000);

  it("matches the same strong tag only", () => {
    expect(ifRangeMatches('"ff-1000"', etag, modified, later)).toBe(true);
    expect(ifRangeMatches(' "ff-1000" ', etag, modified, later)).toBe(true);
    expect(ifRangeMatches('"ff-1001"', etag, modified, later)).toBe(false);
    expect(ifRangeMatches('W/"ff-1000"', etag, modified, later)).toBe(false);
    expect(ifRangeMatches("ff-1000", etag, modified, later)).toBe(false);
  });

  it("matches an HTTP-date equal to Last-Modified once that date is strong", () => {
    const httpDate = modified.toUTCString(); // second precision
    expect(ifRangeMatches(httpDate, etag, modified, later)).toBe(true);
    expect(ifRangeMatches(new Date(modified.getTime() - 1000).toUTCString(), etag, modified, later)).toBe(
      false,
    );
    expect(ifRangeMatches(new Date(modified.getTime() + 1000).toUTCString(), etag, modified, later)).toBe(
      false,
    );
    // modified within the last second: the date is weak, the file might change again unseen
    expect(ifRangeMatches(httpDate, etag, modified, new Date(modified.getTime() + 500))).toBe(false);
    expect(ifRangeMatches("not a date", etag, modified, later)).toBe(false);
    expect(ifRangeMatches("", etag, modified, later)).toBe(false);
  });
});

describe("attachmentDisposition", () => {
  it("quotes a plain ASCII name", () => {
    expect(attachmentDisposition("restore-r1.archive.gz")).toBe(
      'attachment; filename="restore-r1.archive.gz"',
    );
    expect(attachmentDisposition("a b.gz")).toBe('attachment; filename="a b.gz"');
  });

  it("adds filename* for other characters, with an ASCII stand-in", () => {
    expect(attachmentDisposition("prod-ü.archive")).toBe(
      `attachment; filename="prod-_.archive"; filename*=UTF-8''prod-%C3%BC.archive`,
    );
    expect(attachmentDisposition('say "hi".gz')).toBe(
      `attachment; filename="say _hi_.gz"; filename*=UTF-8''say%20%22hi%22.gz`,
    );
    expect(attachmentDisposition("100%.gz")).toBe(
      `attachment; filename="100_.gz"; filename*=UTF-8''100%25.gz`,
    );
    expect(attachmentDisposition("x\r\nSet-Cookie: a=b")).not.toMatch(/[\r\n]/);
  });

  it("never keeps a path separator, and never gives an empty name", () => {
    expect(attachmentDisposition("../../etc/passwd")).toBe('attachment; filename=".._.._etc_passwd"');
    expect(attachmentDisposition("a\\b")).toBe('attachment; filename="a_b"');
    expect(attachmentDisposition("")).toBe('attachment; filename="download"');
    expect(attachmentDisposition("  ")).toBe('attachment; filename="download"');
  });
});

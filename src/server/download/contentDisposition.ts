/*
 * `Content-Disposition: attachment` makes a browser save the file instead of showing it, under
 * the name given. A header can only hold a plain ASCII quoted string, so a name with other
 * characters also gets the RFC 6266 / RFC 8187 `filename*=UTF-8''…` form, which browsers prefer,
 * after an ASCII stand-in for older clients. Path separators never survive: the name is a name.
 */

/** RFC 8187 attr-char: what may stay unencoded in `filename*`. */
const ATTR_CHAR = /[A-Za-z0-9!#$&+.^_`|~-]/;

/** The Content-Disposition value for downloading under `filename`. */
export function attachmentDisposition(filename: string): string {
  const name = filename.replace(/[/\\]/g, "_").trim() || "download";
  const ascii = name.replace(/[^\x20-\x7e]|["%]/g, "_");
  if (ascii === name) return `attachment; filename="${ascii}"`;
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeExtValue(name)}`;
}

function encodeExtValue(value: string): string {
  let out = "";
  for (const byte of Buffer.from(value, "utf8")) {
    const char = String.fromCharCode(byte);
    out +=
      byte < 0x80 && ATTR_CHAR.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/*
 * The Range header (RFC 9110 §14), decided against a representation of `size` bytes. Ranges let a
 * browser or `curl -C -` resume a multi-gigabyte archive download instead of starting over.
 *
 *   Range       = range-unit "=" range-set         range-unit is a token, case-insensitive
 *   range-set   = 1#range-spec                     a list: OWS around commas, empty elements ignored
 *   range-spec  = int-range / suffix-range
 *   int-range   = first-pos "-" [ last-pos ]       last-pos < first-pos makes it invalid
 *   suffix-range = "-" suffix-length
 *
 * Decisions:
 * - No header, a unit other than "bytes", or a syntactically invalid header: 200 with the whole
 *   representation. §14.2: a server MUST ignore a range unit it does not understand, and MAY
 *   ignore an invalid ranges-specifier. One bad element makes the whole header invalid.
 * - One satisfiable range: 206 with that range, last-pos clamped to the end and a suffix longer
 *   than the representation taken as all of it (§14.1.1).
 * - Several ranges: 200 with the whole representation when at least one is satisfiable. §14.2
 *   lets a server ignore Range altogether, and a whole archive is what a downloader wants; this
 *   spares us multipart/byteranges, which no archive client asks for.
 * - Nothing satisfiable (first-pos at or past the end, or a zero suffix): 416, answered with
 *   `Content-Range: bytes * /size` (`unsatisfiedContentRange`).
 * - An empty representation with a non-zero suffix range: that range is satisfiable yet covers
 *   zero bytes, which no Content-Range can express; 200 with the (empty) whole.
 * Whitespace: the field value's ends and around list elements (so "bytes= 0-1" is accepted);
 * none inside a range-spec or around "=" in the unit ("bytes =0-1" is invalid, so ignored).
 * Positions may have any number of digits: they are compared exactly, as BigInts.
 */

export type RangeDecision =
  /** The whole representation; `reason` says why (for logs and tests). */
  | { status: 200; reason: "absent" | "invalid" | "unit" | "multiple" | "empty" }
  /** One range, `start` to `end` inclusive, both within the representation. */
  | { status: 206; start: number; end: number }
  /** No range can be served: answer with `unsatisfiedContentRange(size)`. */
  | { status: 416 };

type Spec = { first: bigint; last?: bigint } | { suffix: bigint };

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const INT_RANGE = /^([0-9]+)-([0-9]*)$/;
const SUFFIX_RANGE = /^-([0-9]+)$/;
const OWS_ENDS = /^[ \t]+|[ \t]+$/g;

/** Decides how to answer a Range header (the raw field value) for a representation of `size` bytes. */
export function parseRange(header: string | undefined, size: number): RangeDecision {
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new RangeError(`parseRange: size must be a non-negative safe integer, got ${size}`);
  }
  if (header === undefined) return { status: 200, reason: "absent" };
  const value = header.replace(OWS_ENDS, "");
  const equals = value.indexOf("=");
  if (equals <= 0 || !TOKEN.test(value.slice(0, equals))) return { status: 200, reason: "invalid" };
  if (value.slice(0, equals).toLowerCase() !== "bytes") return { status: 200, reason: "unit" };
  const specs = parseRangeSet(value.slice(equals + 1));
  if (!specs) return { status: 200, reason: "invalid" };

  const total = BigInt(size);
  const satisfiable = specs.filter((spec) => ("suffix" in spec ? spec.suffix > 0n : spec.first < total));
  if (satisfiable.length === 0) return { status: 416 };
  if (specs.length > 1) return { status: 200, reason: "multiple" };
  if (size === 0) return { status: 200, reason: "empty" };
  const spec = satisfiable[0];
  const last = total - 1n;
  if ("suffix" in spec) {
    const start = spec.suffix >= total ? 0n : total - spec.suffix;
    return { status: 206, start: Number(start), end: size - 1 };
  }
  const end = spec.last === undefined || spec.last > last ? last : spec.last;
  return { status: 206, start: Number(spec.first), end: Number(end) };
}

/** The range specs of a range-set, or undefined when any element is invalid or there is none. */
function parseRangeSet(set: string): Spec[] | undefined {
  const specs: Spec[] = [];
  for (const raw of set.split(",")) {
    const element = raw.replace(OWS_ENDS, "");
    if (element === "") continue;
    const suffix = SUFFIX_RANGE.exec(element);
    if (suffix) {
      specs.push({ suffix: BigInt(suffix[1]) });
      continue;
    }
    const int = INT_RANGE.exec(element);
    if (!int) return undefined;
    const first = BigInt(int[1]);
    if (int[2] === "") {
      specs.push({ first });
      continue;
    }
    const last = BigInt(int[2]);
    if (last < first) return undefined;
    specs.push({ first, last });
  }
  return specs.length > 0 ? specs : undefined;
}

/** `Content-Range` of a 206: `bytes start-end/size` (end inclusive). */
export function satisfiedContentRange(start: number, end: number, size: number): string {
  return `bytes ${start}-${end}/${size}`;
}

/** `Content-Range` of a 416: `bytes * /size` (without the space), the current length. */
export function unsatisfiedContentRange(size: number): string {
  return `bytes */${size}`;
}

/**
 * CRC-64 as mongodump computes it for each namespace of an archive: Go's `hash/crc64` with the
 * `crc64.ECMA` table (mongo-tools `common/archive/multiplexer.go`). That is the reflected ECMA-182
 * polynomial 0xC96C5795D7870F42 with initial value and final xor all ones (the CRC-64/XZ
 * catalogue entry; check value of "123456789" = 0x995dc9bbdf1939fa).
 *
 * The 64-bit state is kept as two unsigned 32-bit halves, so no BigInt arithmetic runs per byte.
 */

const POLY_LO = 0xd7870f42;
const POLY_HI = 0xc96c5795;

const TABLE_LO = new Uint32Array(256);
const TABLE_HI = new Uint32Array(256);
for (let i = 0; i < 256; i++) {
  let lo = i;
  let hi = 0;
  for (let bit = 0; bit < 8; bit++) {
    const carry = lo & 1;
    lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
    hi = hi >>> 1;
    if (carry) {
      lo = (lo ^ POLY_LO) >>> 0;
      hi = (hi ^ POLY_HI) >>> 0;
    }
  }
  TABLE_LO[i] = lo;
  TABLE_HI[i] = hi;
}

/** An incremental CRC-64 (Go `crc64.New(crc64.MakeTable(crc64.ECMA))`). */
export class Crc64 {
  // The register holds the complemented CRC, as Go's update does (~crc in, ~crc out).
  #lo = 0xffffffff;
  #hi = 0xffffffff;

  /** Adds `bytes` to the checksum. */
  update(bytes: Uint8Array): this {
    let lo = this.#lo;
    let hi = this.#hi;
    for (let i = 0; i < bytes.length; i++) {
      const index = (lo ^ bytes[i]) & 0xff;
      lo = ((lo >>> 8) | (hi << 24)) ^ TABLE_LO[index];
      hi = (hi >>> 8) ^ TABLE_HI[index];
    }
    this.#lo = lo >>> 0;
    this.#hi = hi >>> 0;
    return this;
  }

  /** The checksum so far, unsigned (what Go's `Sum64` returns). */
  digest(): bigint {
    return (BigInt(~this.#hi >>> 0) << 32n) | BigInt(~this.#lo >>> 0);
  }

  /** The checksum so far as the signed int64 stored in an archive's EOF block. */
  digestInt64(): bigint {
    return BigInt.asIntN(64, this.digest());
  }
}

/** The CRC-64 (ECMA, Go's form) of `bytes`, unsigned. */
export function crc64Ecma(bytes: Uint8Array): bigint {
  return new Crc64().update(bytes).digest();
}

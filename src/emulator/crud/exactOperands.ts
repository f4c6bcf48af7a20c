import { Decimal128, Double, Int32, Long, type Document } from "bson";
import { getPath, replaceAtPath } from "../storage/documentPath.js";

/**
 * mingo computes on plain JS numbers, which forget whether a number was an int32, an int64 or a
 * double. These helpers put the BSON types back where MongoDB keeps them: values that are stored
 * as given ($set, $setOnInsert, $push, $addToSet) are taken from the update exactly as the
 * client sent it, and the results of $inc and $mul get the type MongoDB's arithmetic gives.
 */

const STORED_AS_GIVEN = ["$set", "$setOnInsert"];
const ARRAY_APPENDS = ["$push", "$addToSet"];

/**
 * The update with its stored values replaced by their exactly-typed versions. With
 * `promoteArrayOperands`, $push / $addToSet keep their promoted values, so that mingo's $sort and
 * duplicate checks compare numbers by value; the caller then restores their types
 * (`restoreMovedTypes`), which needs the paths to be static.
 */
export function withExactOperands(
  update: Document,
  exact: Document,
  options: { promoteArrayOperands?: boolean } = {},
): Document {
  const out: Document = { ...update };
  for (const operator of STORED_AS_GIVEN) {
    if (exact[operator] && typeof exact[operator] === "object") out[operator] = exact[operator];
  }
  if (options.promoteArrayOperands) return out;
  for (const operator of ARRAY_APPENDS) {
    const promoted = update[operator] as Document | undefined;
    const typed = exact[operator] as Document | undefined;
    if (!promoted || !typed) continue;
    const merged: Document = {};
    for (const [path, value] of Object.entries(promoted)) {
      const exactValue = typed[path] as unknown;
      const hasModifiers = value !== null && typeof value === "object" && "$each" in (value as Document);
      // With $each, only the values are stored; $slice, $sort and $position stay plain numbers.
      merged[path] = hasModifiers
        ? { ...(value as Document), $each: (exactValue as Document).$each }
        : exactValue;
    }
    out[operator] = merged;
  }
  return out;
}

type NumberType = "int" | "long" | "double" | "decimal";
const RANK: Record<NumberType, number> = { int: 0, long: 1, double: 2, decimal: 3 };

function numberType(value: unknown): NumberType | undefined {
  if (value instanceof Int32) return "int";
  if (value instanceof Long) return "long";
  if (value instanceof Double) return "double";
  if (value instanceof Decimal128) return "decimal";
  return undefined;
}

function typed(value: number, type: NumberType): unknown {
  if (type === "double") return new Double(value);
  if (type === "long") return Long.fromNumber(value);
  if (type === "int")
    return value >= -(2 ** 31) && value < 2 ** 31 ? new Int32(value) : Long.fromNumber(value);
  return value;
}

/** Gives each $inc / $mul result the wider of its two operands' types (int32 overflows to int64). */
export function restoreArithmeticTypes(post: Document, preExact: Document, exactUpdate: Document): void {
  for (const operator of ["$inc", "$mul"]) {
    const operands = exactUpdate[operator] as Document | undefined;
    if (!operands) continue;
    for (const [path, operand] of Object.entries(operands)) {
      if (path.includes("$")) continue; // positional paths: their element is not known here
      const result = getPath(post, path);
      if (typeof result !== "number") continue;
      const operandType = numberType(operand) ?? "int";
      const before = numberType(getPath(preExact, path));
      const type = before && RANK[before] > RANK[operandType] ? before : operandType;
      if (type !== "decimal") replaceAtPath(post, path, typed(result, type));
    }
  }
}

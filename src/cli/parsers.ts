import { InvalidArgumentError } from "commander";

/** Option value parsers the commands share: a bad value is refused with commander's usage error. */

export function positiveNumber(value: string): number {
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed <= 0) throw new InvalidArgumentError("expected a positive number");
  return parsed;
}

export function positiveInteger(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed <= 0)
    throw new InvalidArgumentError("expected a whole number above 0");
  return parsed;
}

export function wholeNumber(value: string): number {
  const parsed = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(parsed))
    throw new InvalidArgumentError("expected a whole number");
  return parsed;
}

export function portNumber(value: string): number {
  const parsed = Number(value);
  if (!/^\d+$/.test(value.trim()) || parsed > 65535)
    throw new InvalidArgumentError("expected a TCP port number 0..65535 (0 picks a free one)");
  return parsed;
}

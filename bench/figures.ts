/** One benchmark figure, as written to bench/results/latest.json. */
export interface Figure {
  name: string;
  value: number;
  unit: string;
}

export function round(value: number, digits = 2): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

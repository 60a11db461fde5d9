import { FerryError } from "@ferry/core";

const DURATION_PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "90s", "5m", "1h30m", or a plain number of seconds. */
export function parseDuration(value: string, flag: string): number {
  if (/^\d+(?:\.\d+)?$/.test(value)) return Math.round(Number(value) * 1000);
  const normalized = value.trim();
  let total = 0;
  let consumed = "";
  for (const match of normalized.matchAll(DURATION_PART)) {
    total += Number(match[1]) * (UNIT_MS[match[2] as string] as number);
    consumed += match[0];
  }
  if (consumed !== normalized || consumed === "")
    throw new FerryError("E_BAD_ARGUMENT", `${flag} expects a duration such as 90s, 5m or 1h30m, got ${JSON.stringify(value)}`);
  return Math.round(total);
}

/** "3" or "25%". */
export function parseQuantity(value: string, flag: string): { value: number; percent: boolean } {
  const match = /^(\d+)(%?)$/.exec(value.trim());
  if (!match) throw new FerryError("E_BAD_ARGUMENT", `${flag} expects a count (3) or a percentage (25%), got ${JSON.stringify(value)}`);
  const quantity = { value: Number(match[1]), percent: match[2] === "%" };
  if (quantity.percent && quantity.value > 100) throw new FerryError("E_BAD_ARGUMENT", `${flag} cannot exceed 100%`);
  return quantity;
}

export function parseCount(value: string, flag: string): number {
  if (!/^\d+$/.test(value)) throw new FerryError("E_BAD_ARGUMENT", `${flag} expects a whole number, got ${JSON.stringify(value)}`);
  return Number(value);
}

export function formatQuantity(quantity: { value: number; percent: boolean } | undefined): string {
  if (!quantity) return "-";
  return `${quantity.value}${quantity.percent ? "%" : ""}`;
}

/** The inverse of parseDuration for whole units: 1800000 → "30m". */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [...Object.entries(UNIT_MS)].reverse()) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

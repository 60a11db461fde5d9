import { FerryError } from "../errors.js";
import { assertStorePath } from "../validate.js";
import { sha256Hex } from "./manifest.js";

/**
 * What a site holds, carried back out so the next bundle can leave those
 * paths out (`ferry bundle create --since`). Not signed: a wrong inventory can
 * only make a bundle too small, and the site then refuses it as incomplete.
 */
export interface SiteInventory {
  format: "ferry-site-inventory";
  version: 1;
  createdAt: string;
  /** Sequence of the last bundle the site imported; 0 when none. */
  lastSequence: number;
  storePaths: string[];
}

export function serializeInventory(inventory: Omit<SiteInventory, "format" | "version">): string {
  return `${JSON.stringify({ format: "ferry-site-inventory", version: 1, ...inventory, storePaths: [...inventory.storePaths].sort() }, null, 1)}\n`;
}

export function parseInventory(text: string): SiteInventory & { sha256: string } {
  let raw: Partial<SiteInventory>;
  try {
    raw = JSON.parse(text) as Partial<SiteInventory>;
  } catch (error) {
    throw new FerryError("E_BAD_ARGUMENT", `the inventory is not JSON: ${(error as Error).message}`);
  }
  if (raw.format !== "ferry-site-inventory" || raw.version !== 1 || !Array.isArray(raw.storePaths)) {
    throw new FerryError("E_BAD_ARGUMENT", "not a Ferry site inventory of version 1 (make one with: ferry site inventory -o FILE)");
  }
  const lastSequence = Number(raw.lastSequence ?? 0);
  if (!Number.isSafeInteger(lastSequence) || lastSequence < 0) throw new FerryError("E_BAD_ARGUMENT", "inventory lastSequence is not a count");
  return {
    format: "ferry-site-inventory",
    version: 1,
    createdAt: String(raw.createdAt ?? ""),
    lastSequence,
    storePaths: raw.storePaths.map(assertStorePath),
    sha256: sha256Hex(text),
  };
}

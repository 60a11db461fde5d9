import { readFileSync } from "node:fs";
import { FerryError } from "../errors.js";
import { writeFileAtomic } from "../atomic-file.js";
import { assertHostName } from "../validate.js";
import type { BundleManifest } from "./manifest.js";

export interface LedgerEntry {
  sequence: number;
  manifestSha256: string;
  createdAt: string;
  importedAtMs: number;
  signer: string;
  hosts: Record<string, string>;
  /** The site the bundle named; absent for bundles that name none. */
  site?: string;
}

/** What the receiving side (a site controller, or a lone host) accepts, set by its operator. */
export interface BundlePolicy {
  /** This site's name. When set, a bundle must name exactly this site. */
  siteName?: string;
  /** The lowest sequence a site accepts even with an empty ledger: a fresh site does not take any old bundle. */
  minSequence?: number;
}

/**
 * How far ahead of both the last sequence and this machine's clock (in
 * milliseconds, which is what sequences default to) a bundle may be. Without a
 * bound, one bundle signed with a huge sequence would block every later one.
 */
export const MAX_SEQUENCE_AHEAD_MS = 30 * 86_400_000;

interface SiteRecord {
  lastSequence: number;
  /** The most recent imports, newest last. */
  imports: LedgerEntry[];
}

interface LedgerFile {
  version: 2;
  /** Per site name ("" for bundles that name no site). */
  sites: Record<string, SiteRecord>;
  /** The single sequence of a version-1 ledger: a floor for every site, since it never told sites apart. */
  legacyFloor: number;
}

const KEEP = 50;

/**
 * Which bundles a site (or a standalone host) has taken, in a small JSON file
 * written atomically. A bundle is refused when it names another site, has
 * expired, is not above the last sequence taken for its site (or the site's
 * configured minimum), or claims a sequence implausibly far ahead.
 */
export class BundleLedger {
  constructor(readonly file: string) {}

  private read(): LedgerFile {
    let text: string;
    try {
      text = readFileSync(this.file, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return { version: 2, sites: {}, legacyFloor: 0 };
      throw error;
    }
    let parsed: { version?: unknown; lastSequence?: unknown; imports?: unknown; sites?: unknown; legacyFloor?: unknown };
    try {
      parsed = JSON.parse(text) as typeof parsed;
    } catch {
      throw new FerryError("E_BAD_CONFIG", `${this.file} is not a bundle ledger (not JSON)`);
    }
    if (parsed.version === 1 && Number.isSafeInteger(parsed.lastSequence)) {
      const lastSequence = parsed.lastSequence as number;
      return { version: 2, sites: { "": { lastSequence, imports: (parsed.imports as LedgerEntry[]) ?? [] } }, legacyFloor: lastSequence };
    }
    if (parsed.version !== 2 || typeof parsed.sites !== "object" || parsed.sites === null || !Number.isSafeInteger(parsed.legacyFloor)) {
      throw new FerryError("E_BAD_CONFIG", `${this.file} is not a bundle ledger`);
    }
    return parsed as LedgerFile;
  }

  /** The last sequence taken for `site` ("" for bundles naming none), never below what a version-1 ledger recorded. */
  lastSequence(site = ""): number {
    const ledger = this.read();
    return Math.max(ledger.sites[site]?.lastSequence ?? 0, ledger.legacyFloor);
  }

  /** The highest sequence taken for any site. */
  highestSequence(): number {
    const ledger = this.read();
    return Math.max(ledger.legacyFloor, ...Object.values(ledger.sites).map((site) => site.lastSequence));
  }

  get imports(): readonly LedgerEntry[] {
    return Object.values(this.read().sites)
      .flatMap((site) => site.imports)
      .sort((a, b) => a.importedAtMs - b.importedAtMs);
  }

  /** Throws the specific refusal unless this side may take `manifest` now; records nothing. */
  assertAcceptable(manifest: Pick<BundleManifest, "sequence" | "site" | "expiresAt">, policy: BundlePolicy, nowMs: number): void {
    assertBundleAcceptable(manifest, policy, nowMs, this.lastSequence(manifest.site ?? ""));
  }

  /** The whole ledger as stored, for a controller that moves it into its database. */
  snapshot(): { sites: Record<string, { lastSequence: number; imports: LedgerEntry[] }>; legacyFloor: number } {
    const { sites, legacyFloor } = this.read();
    return { sites, legacyFloor };
  }

  record(entry: LedgerEntry): void {
    const current = this.read();
    const site = entry.site ?? "";
    const last = Math.max(current.sites[site]?.lastSequence ?? 0, current.legacyFloor);
    if (entry.sequence <= last) {
      throw new FerryError("E_BUNDLE_REPLAYED", `bundle sequence ${entry.sequence} is not above the last one taken here (${last})`);
    }
    const imports = [...(current.sites[site]?.imports ?? []), entry].slice(-KEEP);
    const next: LedgerFile = { ...current, sites: { ...current.sites, [site]: { lastSequence: entry.sequence, imports } } };
    writeFileAtomic(this.file, `${JSON.stringify(next, null, 1)}\n`, 0o600);
  }
}

/**
 * Throws the specific refusal unless a side whose last sequence for the
 * bundle's site is `last` may take `manifest` now: another site, expired, not
 * above the last one or the site's minimum, or implausibly far ahead.
 */
export function assertBundleAcceptable(
  manifest: Pick<BundleManifest, "sequence" | "site" | "expiresAt">,
  policy: BundlePolicy,
  nowMs: number,
  last: number,
): void {
  if (policy.siteName !== undefined && manifest.site !== policy.siteName) {
    throw new FerryError(
      "E_BUNDLE_WRONG_SITE",
      manifest.site === null
        ? `the bundle names no site, and this is site ${policy.siteName}`
        : `the bundle is for site ${manifest.site}, and this is site ${policy.siteName}`,
    );
  }
  if (manifest.expiresAt !== null && Date.parse(manifest.expiresAt) <= nowMs) {
    throw new FerryError("E_BUNDLE_EXPIRED", `the bundle expired at ${manifest.expiresAt} (this machine's clock: ${new Date(nowMs).toISOString()})`);
  }
  const minimum = policy.minSequence ?? 1;
  if (manifest.sequence <= last) {
    throw new FerryError("E_BUNDLE_REPLAYED", `bundle sequence ${manifest.sequence} is not above the last one taken here (${last})`);
  }
  if (manifest.sequence < minimum) {
    throw new FerryError("E_BUNDLE_REPLAYED", `bundle sequence ${manifest.sequence} is below this site's minimum sequence (${minimum})`);
  }
  const horizon = Math.max(last, minimum, nowMs) + MAX_SEQUENCE_AHEAD_MS;
  if (manifest.sequence > horizon) {
    throw new FerryError(
      "E_BUNDLE_SEQUENCE",
      `bundle sequence ${manifest.sequence} is more than 30 days ahead of both the last one taken here (${last}) and this machine's clock (${nowMs} ms)`,
    );
  }
}

/** Reads a policy file (`{"siteName": "…", "minSequence": N}`); a missing file is the empty policy. */
export function readBundlePolicy(file: string): BundlePolicy {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw new FerryError("E_BAD_CONFIG", `cannot read ${file}: ${(error as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new FerryError("E_BAD_CONFIG", `${file} is not JSON: ${(error as Error).message}`);
  }
  return parseBundlePolicy(raw, file);
}

export function parseBundlePolicy(raw: unknown, where: string): BundlePolicy {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new FerryError("E_BAD_CONFIG", `${where} must hold a JSON object`);
  const policy: BundlePolicy = {};
  for (const [key, value] of Object.entries(raw)) {
    if (key === "siteName") policy.siteName = assertHostName(value);
    else if (key === "minSequence") {
      if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1)
        throw new FerryError("E_BAD_CONFIG", `${where}: minSequence must be a positive integer`);
      policy.minSequence = value;
    } else throw new FerryError("E_BAD_CONFIG", `${where}: unknown key ${JSON.stringify(key)} (known: siteName, minSequence)`);
  }
  return policy;
}

import { readFileSync } from "node:fs";
import { FerryError } from "../errors.js";
import { writeFileAtomic } from "../atomic-file.js";
import type { BundleManifest } from "./manifest.js";

export interface LedgerEntry {
  sequence: number;
  manifestSha256: string;
  createdAt: string;
  importedAtMs: number;
  signer: string;
  hosts: Record<string, string>;
}

interface LedgerFile {
  version: 1;
  lastSequence: number;
  /** The most recent imports, newest last. */
  imports: LedgerEntry[];
}

const KEEP = 50;

/**
 * Which bundles a site (or a standalone host) has taken, in a small JSON file
 * written atomically: a bundle whose sequence is not above the last one is a
 * replay and is refused, whoever signed it.
 */
export class BundleLedger {
  constructor(readonly file: string) {}

  private read(): LedgerFile {
    let text: string;
    try {
      text = readFileSync(this.file, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return { version: 1, lastSequence: 0, imports: [] };
      throw error;
    }
    const parsed = JSON.parse(text) as LedgerFile;
    if (parsed.version !== 1 || !Number.isSafeInteger(parsed.lastSequence)) throw new FerryError("E_BAD_CONFIG", `${this.file} is not a bundle ledger`);
    return parsed;
  }

  get lastSequence(): number {
    return this.read().lastSequence;
  }

  get imports(): readonly LedgerEntry[] {
    return this.read().imports;
  }

  /** E_BUNDLE_REPLAYED unless `manifest` is newer than every bundle taken so far. */
  assertNewer(manifest: Pick<BundleManifest, "sequence">): void {
    const last = this.lastSequence;
    if (manifest.sequence <= last) {
      throw new FerryError("E_BUNDLE_REPLAYED", `bundle sequence ${manifest.sequence} is not above the last one taken here (${last})`);
    }
  }

  record(entry: LedgerEntry): void {
    const current = this.read();
    if (entry.sequence <= current.lastSequence) {
      throw new FerryError("E_BUNDLE_REPLAYED", `bundle sequence ${entry.sequence} is not above the last one taken here (${current.lastSequence})`);
    }
    const next: LedgerFile = { version: 1, lastSequence: entry.sequence, imports: [...current.imports, entry].slice(-KEEP) };
    writeFileAtomic(this.file, `${JSON.stringify(next, null, 1)}\n`, 0o600);
  }
}

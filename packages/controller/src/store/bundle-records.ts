import type { LedgerEntry } from "@ferry/core";

/**
 * The bundles a site controller has taken, in its database: a bundle import
 * that deploys records its ledger line in the same transaction as the
 * desired systems (StateStore.assignDesired), so neither can be lost without
 * the other.
 */
export interface BundleLedgerStore {
  /** The last sequence taken for `site` ("" for bundles naming none), never below the floor of an adopted version-1 file. */
  lastSequence(site?: string): Promise<number>;
  /** The highest sequence taken for any site. */
  highestSequence(): Promise<number>;
  /** The newest imports of every site (50 each), oldest first. */
  imports(): Promise<LedgerEntry[]>;
  /** E_BUNDLE_REPLAYED unless the entry is above the last sequence of its site. */
  record(entry: LedgerEntry): Promise<void>;
  /**
   * Takes over a ledger an earlier version kept in a file, once: nothing
   * happens when the database already holds imports.
   */
  adopt(ledger: { sites: Record<string, { imports: readonly LedgerEntry[] }>; legacyFloor: number }): Promise<boolean>;
}

// What nix/package.nix needs from package-lock.json. nixpkgs' importNpmLock
// fetches every package separately with fetchurl { url = resolved; hash =
// integrity; }: an entry without `resolved` is silently left for npm to fetch,
// which fails in the offline build sandbox. npm omits `resolved` when
// `omit-lockfile-registry-resolved` is set (this repository's .npmrc turns it
// back off), and never adds it to an entry that lacks it, so
//
//   node --import tsx nix/npm-lock.ts
//
// fills in the registry URL of every such entry (the URL npm itself uses for
// registry.npmjs.org tarballs) and reports what else importNpmLock cannot use.
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export const REGISTRY = "https://registry.npmjs.org";

export interface LockEntry {
  name?: string;
  version?: string;
  resolved?: string;
  integrity?: string;
  link?: boolean;
  inBundle?: boolean;
  hasInstallScript?: boolean;
  [key: string]: unknown;
}

export interface PackageLock {
  lockfileVersion: number;
  packages: Record<string, LockEntry>;
  [key: string]: unknown;
}

const NODE_MODULES = "node_modules/";

/** The package name an installed entry is known by ("node_modules/a/node_modules/@s/b" -> "@s/b"). */
export function packageName(key: string, entry: LockEntry): string {
  return entry.name ?? key.slice(key.lastIndexOf(NODE_MODULES) + NODE_MODULES.length);
}

/** Entries that importNpmLock downloads: installed packages that are neither workspace links nor bundled in another tarball. */
export function fetchedEntries(lock: PackageLock): [key: string, entry: LockEntry][] {
  return Object.entries(lock.packages).filter(([key, entry]) => key.includes(NODE_MODULES) && entry.link !== true && entry.inBundle !== true);
}

/** The tarball URL of NAME@VERSION on registry.npmjs.org. */
export function registryTarballUrl(name: string, version: string): string {
  const base = name.startsWith("@") ? name.slice(name.indexOf("/") + 1) : name;
  return `${REGISTRY}/${name}/-/${base}-${version}.tgz`;
}

/** One line per entry that importNpmLock could not fetch reproducibly; empty when the lock is usable. */
export function lockProblems(lock: PackageLock): string[] {
  const problems: string[] = [];
  if (lock.lockfileVersion < 2) problems.push(`lockfileVersion ${lock.lockfileVersion}: importNpmLock reads the "packages" map of lockfileVersion 2 or 3`);
  for (const [key, entry] of fetchedEntries(lock)) {
    if (!entry.integrity) problems.push(`${key}: no integrity`);
    else if (!entry.integrity.startsWith("sha512-")) problems.push(`${key}: integrity is not sha512 (${entry.integrity.split("-")[0]})`);
    if (!entry.resolved) problems.push(`${key}: no resolved URL`);
    else if (entry.version && entry.resolved !== registryTarballUrl(packageName(key, entry), entry.version))
      problems.push(`${key}: resolved ${entry.resolved} is not its ${REGISTRY} tarball`);
  }
  return problems;
}

/** Adds the registry URL to every fetched entry that has a version and integrity but no `resolved`; returns the keys it changed. */
export function fillResolved(lock: PackageLock): string[] {
  const filled: string[] = [];
  for (const [key, entry] of fetchedEntries(lock)) {
    if (entry.resolved || !entry.version || !entry.integrity) continue;
    // npm writes `resolved` right after `version`; keep that order so that a
    // later npm run leaves the file as it is.
    const rebuilt: LockEntry = {};
    for (const [field, value] of Object.entries(entry)) {
      rebuilt[field] = value;
      if (field === "version") rebuilt.resolved = registryTarballUrl(packageName(key, entry), entry.version);
    }
    lock.packages[key] = rebuilt;
    filled.push(key);
  }
  return filled;
}

function main(): void {
  const file = join(resolve(dirname(fileURLToPath(import.meta.url)), ".."), "package-lock.json");
  const lock = JSON.parse(readFileSync(file, "utf8")) as PackageLock;
  const filled = fillResolved(lock);
  if (filled.length > 0) {
    const temp = `${file}.tmp-${process.pid}`;
    writeFileSync(temp, `${JSON.stringify(lock, null, 2)}\n`);
    renameSync(temp, file);
  }
  process.stdout.write(`package-lock.json: added resolved to ${filled.length} entries\n`);
  const problems = lockProblems(lock);
  if (problems.length > 0) {
    process.stderr.write(`package-lock.json still has entries importNpmLock cannot fetch:\n  ${problems.join("\n  ")}\n`);
    process.exitCode = 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) main();

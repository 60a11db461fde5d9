// Shared by the cache garbage collection tests: fixture store paths built by
// the real Nix, copied once into a file cache (`nix copy --to file://…`), and
// a fresh copy of that cache directory per test.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseNarInfo, silentLogger } from "@ferry/core";
import { BinaryCache } from "../src/cache/binary-cache.js";

const FIXTURE = fileURLToPath(new URL("fixtures/gc-closures.nix", import.meta.url));
export const ATTRS = ["lib", "onlyPrevious", "onlyUnused", "desired", "current", "previous", "rollout", "bundle", "unused", "big"] as const;
export type Attr = (typeof ATTRS)[number];

export interface GcFixture {
  paths: Record<Attr, string>;
  /** A file cache holding every fixture path; copy it, never change it. */
  template: string;
  cleanup(): void;
}

export function nixAvailable(): boolean {
  try {
    execFileSync("nix-build", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

export function buildGcFixture(): GcFixture {
  const salt = randomBytes(6).toString("hex");
  const out = execFileSync(
    "nix-build",
    [FIXTURE, "--no-out-link", "--argstr", "salt", salt, "--option", "substituters", "", ...ATTRS.flatMap((attr) => ["-A", attr])],
    { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
  );
  const built = out.trim().split("\n");
  const paths = Object.fromEntries(ATTRS.map((attr, i) => [attr, built[i] as string])) as Record<Attr, string>;
  const template = mkdtempSync(join(tmpdir(), "ferry-gc-template-"));
  execFileSync("nix", ["--extra-experimental-features", "nix-command", "copy", "--to", `file://${template}?compression=none`, ...Object.values(paths)], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  return { paths, template, cleanup: () => rmSync(template, { recursive: true, force: true }) };
}

export interface CacheCopy {
  dir: string;
  cache: BinaryCache;
  close(): void;
}

/** A fresh copy of the fixture cache, served by a BinaryCache; `prepare` changes the directory before the cache reads it. */
export function copyCache(fixture: GcFixture, prepare?: (dir: string) => void): CacheCopy {
  const dir = mkdtempSync(join(tmpdir(), "ferry-gc-cache-"));
  cpSync(fixture.template, dir, { recursive: true });
  prepare?.(dir);
  const cache = new BinaryCache(dir, () => undefined, silentLogger());
  return {
    dir,
    cache,
    close() {
      cache.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const hashOf = (path: string): string => path.slice("/nix/store/".length, "/nix/store/".length + 32);

/** Store paths whose narinfo file is in `dir`. */
export function cachedPaths(dir: string): Set<string> {
  const found = new Set<string>();
  for (const name of readdirSync(dir)) {
    if (name.endsWith(".narinfo")) found.add(parseNarInfo(readFileSync(join(dir, name), "utf8")).storePath);
  }
  return found;
}

/** Every narinfo of `dir` whose NAR file is missing: must always be empty. */
export function narinfosWithoutNar(dir: string): string[] {
  const nars = new Set(readdirSync(join(dir, "nar")).map((name) => `nar/${name}`));
  return readdirSync(dir)
    .filter((name) => name.endsWith(".narinfo"))
    .map((name) => parseNarInfo(readFileSync(join(dir, name), "utf8")))
    .filter((info) => !nars.has(info.url))
    .map((info) => info.storePath);
}

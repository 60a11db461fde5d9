// package-lock.json as nix/package.nix consumes it: nixpkgs' importNpmLock
// fetches each package with fetchurl from the entry's `resolved` URL, checked
// against its `integrity`. These checks need neither Nix nor nixpkgs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { fetchedEntries, fillResolved, lockProblems, packageName, registryTarballUrl, type PackageLock } from "../../nix/npm-lock.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const readJson = <T>(file: string): T => JSON.parse(readFileSync(join(root, file), "utf8")) as T;
const lock = readJson<PackageLock>("package-lock.json");
const FIX = "run `node --import tsx nix/npm-lock.ts` (npm omits `resolved` when omit-lockfile-registry-resolved is set; .npmrc turns it off)";

test("every package fetched from the registry has an integrity hash and its registry URL", () => {
  assert.ok(fetchedEntries(lock).length > 100, "the lock lists the installed packages");
  assert.deepEqual(lockProblems(lock), [], FIX);
});

test("the only unfetched installed entries are the workspace links", () => {
  const workspaces = readJson<{ workspaces: string[] }>("package.json").workspaces;
  const links = Object.entries(lock.packages).filter(([, entry]) => entry.link === true);
  // nix/package.nix drops exactly these entries and lets npm link them: a
  // `file:` dependency outside the workspaces would be lost the same way.
  assert.deepEqual(links.map(([, entry]) => entry.resolved).sort(), workspaces.slice().sort());
  for (const [key, entry] of links) {
    const manifest = readJson<{ name: string }>(join(String(entry.resolved), "package.json"));
    assert.equal(packageName(key, entry), manifest.name, `${key} links to ${entry.resolved}`);
  }
  assert.deepEqual(
    Object.entries(lock.packages).filter(([, entry]) => entry.inBundle === true),
    [],
    "a bundled dependency has no URL of its own; importNpmLock would leave it to its parent's tarball",
  );
});

// nix/package.nix runs `npm rebuild better-sqlite3` only. A new dependency
// with an install script must be judged: rebuilt there, or known to be unneeded.
test("every install script is either rebuilt by package.nix or known to be unneeded", () => {
  const rebuilt = ["better-sqlite3"];
  // Skipped scripts, and whether the package must stay out of the output
  // (a dev dependency, pruned before install).
  const skipped: Record<string, { why: string; devOnly: boolean }> = {
    "@bufbuild/buf": { why: "dev tool (npm run gen); its script checks the platform binary, else downloads one", devOnly: true },
    esbuild: { why: "dev tool (tsx); its script checks the platform binary, else downloads one", devOnly: true },
    protobufjs: { why: "its script only warns about version ranges of its dependents", devOnly: false },
  };
  const withScripts = Object.entries(lock.packages)
    .filter(([, entry]) => entry.hasInstallScript === true)
    .map(([key, entry]) => packageName(key, entry))
    .sort();
  assert.deepEqual(withScripts, [...rebuilt, ...Object.keys(skipped)].sort(), "update npmRebuildFlags in nix/package.nix and this list");
  for (const name of rebuilt) {
    const entry = lock.packages[`node_modules/${name}`];
    assert.ok(entry && entry.dev !== true, `${name} is a runtime dependency at the top of node_modules`);
  }
  for (const [name, { why, devOnly }] of Object.entries(skipped)) {
    if (devOnly) assert.equal(lock.packages[`node_modules/${name}`]?.dev, true, `${name} must stay a dev dependency: ${why}`);
  }
});

test("registry tarball URLs", () => {
  assert.equal(registryTarballUrl("ws", "8.23.0"), "https://registry.npmjs.org/ws/-/ws-8.23.0.tgz");
  assert.equal(registryTarballUrl("@bufbuild/buf", "1.74.0"), "https://registry.npmjs.org/@bufbuild/buf/-/buf-1.74.0.tgz");
  assert.equal(packageName("node_modules/a/node_modules/@s/b", {}), "@s/b");
  assert.equal(packageName("node_modules/string-width-cjs", { name: "string-width" }), "string-width");
});

test("lockProblems names each unusable entry; fillResolved repairs a lock without URLs", () => {
  const integrity = "sha512-AAAA";
  const broken: PackageLock = {
    lockfileVersion: 3,
    packages: {
      "": { name: "x" },
      "packages/a": { name: "@x/a", version: "1.0.0" },
      "node_modules/@x/a": { resolved: "packages/a", link: true },
      "node_modules/ws": { version: "8.0.0", integrity, license: "MIT" },
      "packages/a/node_modules/@s/b": { version: "2.0.0", integrity },
      "node_modules/c": { version: "1.0.0", resolved: registryTarballUrl("c", "1.0.0") },
      "node_modules/d": { version: "1.0.0", resolved: "https://mirror.example/d-1.0.0.tgz", integrity },
      "node_modules/e": { version: "1.0.0", resolved: registryTarballUrl("e", "1.0.0"), integrity: "sha1-AAAA" },
    },
  };
  assert.deepEqual(lockProblems(broken), [
    "node_modules/ws: no resolved URL",
    "packages/a/node_modules/@s/b: no resolved URL",
    "node_modules/c: no integrity",
    "node_modules/d: resolved https://mirror.example/d-1.0.0.tgz is not its https://registry.npmjs.org tarball",
    "node_modules/e: integrity is not sha512 (sha1)",
  ]);
  assert.deepEqual(fillResolved(broken), ["node_modules/ws", "packages/a/node_modules/@s/b"]);
  assert.deepEqual(Object.keys(broken.packages["node_modules/ws"] ?? {}), ["version", "resolved", "integrity", "license"], "npm's field order");
  assert.equal(broken.packages["packages/a/node_modules/@s/b"]?.resolved, "https://registry.npmjs.org/@s/b/-/b-2.0.0.tgz");
  assert.equal(lockProblems(broken).length, 3, "what it cannot know stays reported");
  assert.equal(broken.packages["node_modules/@x/a"]?.resolved, "packages/a", "workspace links are left alone");
});

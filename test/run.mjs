// Runs every test file with Node's built-in runner: unit tests first (fast,
// no privileges), then the Nix module checks, then the end-to-end suite,
// whose files each build their own simulated fleet.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

function find(dir, out = []) {
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const entry of entries.sort()) {
    if (entry === "node_modules" || entry === "dist") continue;
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) find(path, out);
    else if (entry.endsWith(".test.ts")) out.push(relative(root, path));
  }
  return out;
}

const only = process.argv.slice(2);
const files = only.length > 0 ? only : [...find(join(root, "packages")), ...find(join(root, "test"))];
const result = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-reporter=spec", "--test-concurrency=2", "--test-timeout=600000", ...files], {
  cwd: root,
  stdio: "inherit",
});
process.exit(result.status ?? 1);

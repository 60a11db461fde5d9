import { after, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

// Regenerates packages/protocol/src/gen from proto/ the way `npm run gen`
// does, into a temp dir, and compares. Nothing in the repository is written.
const root = fileURLToPath(new URL("../../../", import.meta.url));
const protoDir = join(root, "proto");
const committed = join(root, "packages", "protocol", "src", "gen");
const bin = (name: string): string => join(root, "node_modules", ".bin", name);
const STALE = "generated code is stale: run npm run gen";

const temp = mkdtempSync(join(tmpdir(), "ferry-gen-"));
after(() => rmSync(temp, { recursive: true, force: true }));

function listFiles(dir: string, base = dir): string[] {
  return readdirSync(dir)
    .flatMap((entry) => {
      const path = join(dir, entry);
      return statSync(path).isDirectory() ? listFiles(path, base) : [relative(base, path)];
    })
    .sort();
}

/**
 * The committed template, with its output redirected into the temp dir and
 * local plugin paths (relative to proto/) made absolute. Everything else,
 * plugin options included, is kept byte for byte.
 */
function redirectedTemplate(out: string): string {
  const template = readFileSync(join(protoDir, "buf.gen.yaml"), "utf8");
  const outLines = template.match(/^\s*out:\s*\S+\s*$/gm) ?? [];
  assert.equal(outLines.length, 1, "test expects exactly one plugin output in proto/buf.gen.yaml");
  assert.match(outLines[0] as string, /packages\/protocol\/src\/gen/);
  return template
    .replace(/^(\s*out:\s*)\S+\s*$/m, (_, prefix: string) => `${prefix}${JSON.stringify(out)}`)
    .replace(/^(\s*-?\s*local:\s*)(\.\.?\/\S+)\s*$/gm, (_, prefix: string, path: string) => `${prefix}${JSON.stringify(join(protoDir, path))}`);
}

test("packages/protocol/src/gen matches what proto/ generates", { timeout: 20_000 }, () => {
  for (const tool of ["buf", "prettier", "protoc-gen-ts_proto"]) assert.ok(existsSync(bin(tool)), `${tool} missing: run npm install`);
  const out = join(temp, "gen");
  const templateFile = join(temp, "buf.gen.yaml");
  writeFileSync(templateFile, redirectedTemplate(out));
  execFileSync(bin("buf"), ["generate", "--template", templateFile], { cwd: protoDir, stdio: ["ignore", "pipe", "pipe"], timeout: 15_000 });

  // Format with the repository's prettier configuration, which prettier would not find from the temp dir.
  // --find-config-path exits non-zero when there is no configuration file.
  const found = spawnSync(bin("prettier"), ["--find-config-path", join(committed, "ferry", "v1", "agent.ts")], {
    cwd: root,
    encoding: "utf8",
    timeout: 15_000,
  });
  const config = found.status === 0 ? found.stdout.trim() : "";
  const configArgs = config === "" ? ["--no-config"] : ["--config", join(root, config)];
  execFileSync(bin("prettier"), ["--log-level", "warn", ...configArgs, "--write", out], { cwd: root, stdio: ["ignore", "pipe", "pipe"], timeout: 15_000 });

  const fresh = listFiles(out);
  assert.ok(fresh.length > 0, "buf generated nothing");
  assert.deepEqual(listFiles(committed), fresh, `${STALE} (file lists differ)`);
  for (const file of fresh) {
    const expected = readFileSync(join(out, file), "utf8");
    const actual = readFileSync(join(committed, file), "utf8");
    if (actual !== expected) {
      const lines = [actual.split("\n"), expected.split("\n")] as const;
      const first = lines[0].findIndex((line, i) => line !== lines[1][i]);
      assert.fail(
        `${STALE} (${file} differs from line ${first + 1}: committed ${JSON.stringify(lines[0][first])}, generated ${JSON.stringify(lines[1][first])})`,
      );
    }
  }
});

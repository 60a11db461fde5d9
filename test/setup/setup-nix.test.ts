// test/setup-nix.sh against a scratch NIX_CONF_DIR in each starting state a
// machine can be in: the real Nix builds the probe under that configuration.
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

const script = fileURLToPath(new URL("../setup-nix.sh", import.meta.url));
const scratch: string[] = [];

function confDir(content?: string): string {
  const dir = mkdtempSync(join(tmpdir(), "ferry-nixconf-"));
  scratch.push(dir);
  if (content !== undefined) writeFileSync(join(dir, "nix.conf"), content);
  return dir;
}

function runSetup(dir: string): { code: number | null; stderr: string; conf: string } {
  const result = spawnSync("bash", [script], { env: { ...process.env, NIX_CONF_DIR: dir }, encoding: "utf8", timeout: 120_000 });
  const confPath = join(dir, "nix.conf");
  return { code: result.status, stderr: result.stderr, conf: existsSync(confPath) ? readFileSync(confPath, "utf8") : "" };
}

// Root without a populated nixbld group is the fresh-machine case the script exists for.
const needsBuildUsersLine = process.getuid?.() === 0 && !/^nixbld:[^:]*:[^:]*:.+$/m.test(readFileSync("/etc/group", "utf8"));

after(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

describe("test/setup-nix.sh", { skip: process.getuid?.() === 0 ? false : "needs root, like npm test" }, () => {
  test("no nix.conf at all: writes the missing keys, says so, and Nix builds", () => {
    const dir = confDir();
    const run = runSetup(dir);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.conf, /^sandbox = false$/m);
    if (needsBuildUsersLine) assert.match(run.conf, /^build-users-group =$/m);
    assert.match(run.stderr, /added 'sandbox = false'/);
  });

  test("a nix.conf with other settings: they stay byte for byte, the keys are appended", () => {
    const original = "# an operator's file\nmax-jobs = 3\nkeep-outputs = true"; // no trailing newline on purpose
    const dir = confDir(original);
    const run = runSetup(dir);
    assert.equal(run.code, 0, run.stderr);
    assert.ok(run.conf.startsWith(`${original}\n`), run.conf);
    assert.match(run.conf, /^keep-outputs = true$/m);
    assert.match(run.conf, /^sandbox = false$/m);
  });

  test("a nix.conf that already sets both keys is left untouched", () => {
    const original = "build-users-group =\nsandbox = false\n";
    const dir = confDir(original);
    const run = runSetup(dir);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.conf, original);
    assert.match(run.stderr, /nothing changed/);
  });

  test("running twice changes nothing the second time", () => {
    const dir = confDir();
    assert.equal(runSetup(dir).code, 0);
    const first = readFileSync(join(dir, "nix.conf"), "utf8");
    const second = runSetup(dir);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.conf, first);
  });

  test(
    "a build-users-group someone set to a missing group is not clobbered: setup fails and names the fix",
    { skip: needsBuildUsersLine ? false : "this machine has a nixbld group with members" },
    () => {
      const original = "build-users-group = nixbld\n";
      const dir = confDir(original);
      const run = runSetup(dir);
      assert.notEqual(run.code, 0);
      assert.ok(run.conf.startsWith(original), "the operator's line stays");
      assert.match(run.stderr, /fix: set 'build-users-group =' in .*nix\.conf/);
    },
  );
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { switchLockHolder } from "../src/switch-lock.js";

test("a lock held by another process is found with its pid and command; a free or missing one is not", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ferry-lock-"));
  const file = join(dir, "switch-to-configuration.lock");
  try {
    assert.equal(switchLockHolder(join(dir, "absent.lock")), undefined);
    writeFileSync(file, "");
    assert.equal(switchLockHolder(file), undefined, "nobody holds it yet");
    const holder = spawn("flock", [file, "sleep", "30"], { stdio: "ignore" });
    try {
      const found = await (async () => {
        for (let i = 0; i < 50; i++) {
          const seen = switchLockHolder(file);
          if (seen) return seen;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        return undefined;
      })();
      assert.equal(found?.pid, holder.pid);
      assert.match(found?.command ?? "", /flock .*switch-to-configuration\.lock sleep 30/);
      assert.equal(switchLockHolder(file, holder.pid), undefined, "our own lock does not count");
    } finally {
      holder.kill("SIGKILL");
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// `ferry keys generate` with the real nix-store: a key pair that hosts may
// already trust is never replaced by accident.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ferry } from "../harness/ferry-cli.js";

const root = mkdtempSync(join(tmpdir(), "ferry-keys-e2e-"));
after(() => rmSync(root, { recursive: true, force: true }));

test("keys generate: a 0600 secret; a second run is refused with E_KEY_EXISTS and changes nothing; --force replaces", async () => {
  const dir = join(root, "keys");
  const first = await ferry(["keys", "generate", "--name", "ci-1", "--out", dir, "--json"]);
  assert.equal(first.code, 0, first.stderr);
  const made = first.json<{ secretFile: string; publicFile: string; publicKey: string }>();
  assert.match(made.publicKey, /^ci-1:[A-Za-z0-9+/]{43}=$/);
  assert.equal(statSync(made.secretFile).mode & 0o777, 0o600);
  assert.equal(readFileSync(made.publicFile, "utf8").trim(), made.publicKey);
  const secret = readFileSync(made.secretFile, "utf8");

  const again = await ferry(["keys", "generate", "--name", "ci-1", "--out", dir, "--json"]);
  assert.equal(again.code, 1);
  const error = again.json<{ error: { code: string; message: string } }>().error;
  assert.equal(error.code, "E_KEY_EXISTS");
  assert.ok(error.message.includes(made.secretFile), error.message);
  assert.equal(readFileSync(made.secretFile, "utf8"), secret);
  assert.deepEqual(readdirSync(dir).sort(), ["ci-1.public", "ci-1.secret"]);

  const forced = await ferry(["keys", "generate", "--name", "ci-1", "--out", dir, "--force", "--json"]);
  assert.equal(forced.code, 0, forced.stderr);
  assert.notEqual(forced.json<{ publicKey: string }>().publicKey, made.publicKey);
  assert.notEqual(readFileSync(made.secretFile, "utf8"), secret);
  assert.equal(statSync(made.secretFile).mode & 0o777, 0o600);
  assert.deepEqual(readdirSync(dir).sort(), ["ci-1.public", "ci-1.secret"]);
});

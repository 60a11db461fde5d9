import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FerryError, Nix, generateKeyPair, type CommandResult, type CommandRunner, type CommandSpec } from "@ferry/core";

const root = mkdtempSync(join(tmpdir(), "ferry-keys-"));
after(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;

/** Stands in for nix-store --generate-binary-cache-key: writes NAME:secretN / NAME:publicN the way Nix does, with the umask's mode. */
class FakeKeyRunner implements CommandRunner {
  calls = 0;
  async run(spec: CommandSpec): Promise<CommandResult> {
    const [program, flag, name, secretFile, publicFile] = spec.argv;
    assert.equal(program, "nix-store");
    assert.equal(flag, "--generate-binary-cache-key");
    this.calls++;
    writeFileSync(secretFile as string, `${name}:secret${this.calls}`, { mode: 0o644 });
    writeFileSync(publicFile as string, `${name}:public${this.calls}`, { mode: 0o644 });
    return { argv: spec.argv, exitCode: 0, signal: null, stdout: "", stderr: "", timedOut: false };
  }
}

const modeOf = (file: string): number => statSync(file).mode & 0o777;

function keyCode(error: unknown): boolean {
  return error instanceof FerryError && error.code === "E_KEY_EXISTS";
}

describe("generateKeyPair", () => {
  test("writes NAME.secret 0600 and NAME.public, leaving no scratch files", async () => {
    const dir = join(root, `case-${++counter}`);
    const files = await generateKeyPair(new Nix(new FakeKeyRunner()), "ci-1", dir);
    assert.deepEqual(files, { secretFile: join(dir, "ci-1.secret"), publicFile: join(dir, "ci-1.public"), publicKey: "ci-1:public1" });
    assert.equal(readFileSync(files.secretFile, "utf8"), "ci-1:secret1");
    assert.equal(modeOf(files.secretFile), 0o600);
    assert.equal(readFileSync(files.publicFile, "utf8"), "ci-1:public1\n");
    assert.deepEqual(readdirSync(dir).sort(), ["ci-1.public", "ci-1.secret"]);
  });

  test("an existing pair is kept and refused with E_KEY_EXISTS naming the file; --force replaces it", async () => {
    const dir = join(root, `case-${++counter}`);
    const runner = new FakeKeyRunner();
    const nix = new Nix(runner);
    await generateKeyPair(nix, "ci-1", dir);
    await assert.rejects(generateKeyPair(nix, "ci-1", dir), (error: unknown) => keyCode(error) && (error as Error).message.includes(join(dir, "ci-1.secret")));
    assert.equal(runner.calls, 1, "refused before generating anything");
    assert.equal(readFileSync(join(dir, "ci-1.secret"), "utf8"), "ci-1:secret1");
    const replaced = await generateKeyPair(nix, "ci-1", dir, { force: true });
    assert.equal(replaced.publicKey, "ci-1:public2");
    assert.equal(readFileSync(join(dir, "ci-1.secret"), "utf8"), "ci-1:secret2");
    assert.equal(modeOf(join(dir, "ci-1.secret")), 0o600);
    assert.deepEqual(readdirSync(dir).sort(), ["ci-1.public", "ci-1.secret"]);
  });

  test("a lone public half also counts as an existing key", async () => {
    const dir = join(root, `case-${++counter}`);
    mkdirSync(dir);
    writeFileSync(join(dir, "ci-1.public"), "ci-1:trusted-by-hosts\n");
    await assert.rejects(
      generateKeyPair(new Nix(new FakeKeyRunner()), "ci-1", dir),
      (error: unknown) => keyCode(error) && (error as Error).message.includes("ci-1.public"),
    );
    assert.deepEqual(readdirSync(dir), ["ci-1.public"]);
  });

  test("a pair that appears while generating is kept, and no secret is left without its public half", async () => {
    const dir = join(root, `case-${++counter}`);
    class RacingRunner extends FakeKeyRunner {
      override async run(spec: CommandSpec): Promise<CommandResult> {
        const result = await super.run(spec);
        writeFileSync(join(dir, "ci-1.public"), "ci-1:someone-else\n");
        return result;
      }
    }
    await assert.rejects(generateKeyPair(new Nix(new RacingRunner()), "ci-1", dir), keyCode);
    assert.deepEqual(readdirSync(dir), ["ci-1.public"]);
    assert.equal(readFileSync(join(dir, "ci-1.public"), "utf8"), "ci-1:someone-else\n");
  });
});

// The completion scripts come from the verb table: each shell really runs its
// script here and is asked what it would complete.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exec } from "../../../test/harness/exec.js";
import { VERBS } from "../src/spec/index.js";
import { FERRY_MAIN, cleanEnv, ferry } from "./cli-process.js";

function installed(shell: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${shell}`]).status === 0;
}

describe("shell completion", () => {
  let dir: string;
  let env: Record<string, string>;
  const scripts: Record<string, string> = {};

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "ferry-completion-"));
    // `ferry` on PATH, as an installed CLI would be: the scripts call it to list contexts.
    mkdirSync(join(dir, "bin"));
    writeFileSync(join(dir, "bin", "ferry"), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(FERRY_MAIN)} "$@"\n`);
    chmodSync(join(dir, "bin", "ferry"), 0o755);
    mkdirSync(join(dir, "files"));
    for (const name of ["site-a.ferry", "site-b.ferry"]) writeFileSync(join(dir, "files", name), "");
    env = cleanEnv({ PATH: `${join(dir, "bin")}:${process.env["PATH"] ?? ""}` });
    for (const name of ["production", "staging"]) {
      const set = await ferry(["context", "set", name, "--controller", "127.0.0.1:7071"], env);
      assert.equal(set.code, 0, set.stderr);
    }
    for (const shell of ["bash", "zsh", "fish"]) {
      const result = await ferry(["completion", shell], env);
      assert.equal(result.code, 0, result.stderr);
      scripts[shell] = join(dir, `ferry.${shell}`);
      writeFileSync(scripts[shell] as string, result.stdout);
    }
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  async function bash(words: string[]): Promise<string[]> {
    const program = `source ${JSON.stringify(scripts["bash"])}; COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _ferry; printf '%s\\n' "\${COMPREPLY[@]}"`;
    const result = await exec(["bash", "-c", program, "bash", ...words], { env, cwd: join(dir, "files"), timeoutMs: 20_000 });
    assert.equal(result.code, 0, result.stderr);
    return result.stdout.split("\n").filter(Boolean).sort();
  }

  test("bash proposes verbs, sub-verbs, each verb's flags and their values", async () => {
    assert.deepEqual(await bash(["ferry", "dep"]), ["deploy"]);
    assert.deepEqual(await bash(["ferry", "rollout", ""]), ["abort", "list", "pause", "promote", "resume", "start", "status"]);
    const deployFlags = Object.keys(VERBS.deploy.flags).map((flag) => `--${flag}`);
    assert.deepEqual(await bash(["ferry", "deploy", "--"]), [...deployFlags, "--help"].sort());
    assert.deepEqual(await bash(["ferry", "rollout", "start", "--max"]), ["--max-unavailable"]);
    assert.deepEqual(await bash(["ferry", "deploy", "--mode", ""]), ["boot", "switch", "test", "trial"]);
    assert.deepEqual(await bash(["ferry", "completion", ""]), ["bash", "fish", "zsh"]);
    assert.deepEqual(await bash(["ferry", "help", "roll"]), ["rollback", "rollout"]);
  });

  test("bash completes files for file arguments and context names for --context", async () => {
    assert.deepEqual(await bash(["ferry", "bundle", "verify", "site-"]), ["site-a.ferry", "site-b.ferry"]);
    assert.deepEqual(await bash(["ferry", "rollout", "start", "--manifest", "site-a"]), ["site-a.ferry"]);
    assert.deepEqual(await bash(["ferry", "status", "--context", ""]), ["production", "staging"]);
    assert.deepEqual(await bash(["ferry", "context", "use", "st"]), ["staging"]);
    assert.deepEqual(await bash(["ferry", "deploy", "--timeout", ""]), []);
  });

  test("fish proposes the same, with descriptions", { skip: installed("fish") ? false : "fish is not installed" }, async () => {
    const fish = async (line: string): Promise<string[]> => {
      const result = await exec(["fish", "--no-config", "-c", `source ${scripts["fish"]}; complete -C ${JSON.stringify(line)}`], {
        env,
        cwd: join(dir, "files"),
        timeoutMs: 20_000,
      });
      assert.equal(result.code, 0, result.stderr);
      return result.stdout.split("\n").filter(Boolean).sort();
    };
    assert.deepEqual(await fish("ferry dep"), [`deploy\t${VERBS.deploy.summary}`]);
    const flags = (await fish("ferry deploy --")).map((line) => line.split("\t")[0]);
    assert.deepEqual(flags, [...Object.keys(VERBS.deploy.flags).map((flag) => `--${flag}`), "--help"].sort());
    assert.deepEqual(
      (await fish("ferry deploy --mode ")).map((line) => line.split("\t")[0]),
      ["boot", "switch", "test", "trial"],
    );
    assert.deepEqual(await fish("ferry bundle verify site-"), ["site-a.ferry", "site-b.ferry"]);
    assert.deepEqual(await fish("ferry context use "), ["production", "staging"]);
    assert.deepEqual(
      (await fish("ferry rollout ")).map((line) => line.split("\t")[0]),
      ["abort", "list", "pause", "promote", "resume", "start", "status"],
    );
  });

  // Driving zsh's completion system needs a terminal; here the script's own
  // functions run with zsh's completion builtins replaced by printers.
  test("zsh parses the script, and its function offers verbs, flags and values", { skip: installed("zsh") ? false : "zsh is not installed" }, async () => {
    const syntax = await exec(["zsh", "-n", scripts["zsh"] as string], { timeoutMs: 20_000 });
    assert.equal(syntax.code, 0, syntax.stderr);
    const zsh = async (words: string[]): Promise<string[]> => {
      const program = [
        "compdef() { :; }",
        "_describe() { local name=${@[-1]}; print -rl -- ${(P)name} }",
        'compadd() { [[ $1 == -a ]] && { print -rl -- ${(P)2}; return }; [[ $1 == -- ]] && shift; print -rl -- "$@" }',
        '_files() { print -r -- "FILES${1:+ $*}" }',
        `source ${scripts["zsh"]}`,
        'words=("$@"); CURRENT=$#',
        "_ferry",
      ].join("\n");
      const result = await exec(["zsh", "-f", "-c", program, "zsh", ...words], { env, timeoutMs: 20_000 });
      assert.equal(result.code, 0, result.stderr);
      return result.stdout.split("\n").filter(Boolean).sort();
    };
    assert.ok((await zsh(["ferry", ""])).includes(`deploy:${VERBS.deploy.summary}`));
    const flags = (await zsh(["ferry", "deploy", "--"])).map((line) => line.split(":")[0]);
    assert.deepEqual(flags, [...Object.keys(VERBS.deploy.flags).map((flag) => `--${flag}`), "--help", "-h"].sort());
    assert.deepEqual(await zsh(["ferry", "deploy", "--mode", ""]), ["boot", "switch", "test", "trial"]);
    assert.deepEqual(await zsh(["ferry", "bundle", "verify", ""]), ["FILES"]);
    assert.deepEqual(await zsh(["ferry", "keys", "generate", "--out", ""]), ["FILES -/"]);
    assert.deepEqual(await zsh(["ferry", "context", "use", ""]), ["production", "staging"]);
  });

  test("--json wraps the script", async () => {
    const result = await ferry(["completion", "bash", "--json"], env);
    assert.equal(result.code, 0);
    const { shell, script } = result.json<{ shell: string; script: string }>();
    assert.equal(shell, "bash");
    assert.match(script, /^complete -F _ferry ferry$/m);
  });
});

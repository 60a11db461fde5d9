// The verb table is the only place a flag exists: every command parses its
// arguments through its own entry, and every flag and variable is described.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { FerryError } from "@ferry/core";
import { parseOptions } from "../src/args.js";
import { COMMANDS } from "../src/dispatch.js";
import { ENV } from "../src/spec/env.js";
import { VERBS, allVerbs, resolveVerb, verbName } from "../src/spec/index.js";

const PACKAGES = fileURLToPath(new URL("../../", import.meta.url));

function sources(dir: string): { file: string; text: string }[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((name) => name.endsWith(".ts") && !name.endsWith(".d.ts"))
    .map((name) => ({ file: join(dir, name), text: readFileSync(join(dir, name), "utf8") }));
}

describe("the verb table", () => {
  test("each entry is keyed by its words and reached by them", () => {
    for (const [key, spec] of Object.entries(VERBS)) {
      assert.equal(verbName(spec), key);
      const resolved = resolveVerb([...spec.path]);
      assert.equal(resolved.kind, "verb", key);
      assert.equal(resolved.kind === "verb" && resolved.spec, spec, key);
    }
  });

  test("every verb has a summary, an example of itself, --json, and described flags", () => {
    for (const spec of allVerbs()) {
      const name = verbName(spec);
      assert.ok(spec.summary.length > 10, name);
      assert.ok(spec.example.startsWith(`ferry ${name}`), `${name}: example ${spec.example}`);
      assert.ok("json" in spec.flags, `${name} has no --json`);
      for (const [flag, declared] of Object.entries(spec.flags)) {
        assert.ok(declared.description.length > 5, `${name} --${flag} is undocumented`);
        if (declared.type === "string") assert.ok(declared.value ?? declared.choices, `${name} --${flag} has no placeholder`);
        if (declared.type === "boolean") assert.equal(declared.value, undefined, `${name} --${flag}: a boolean takes no value`);
        if (declared.choices && typeof declared.default === "string") assert.ok(declared.choices.includes(declared.default), `${name} --${flag}`);
      }
      for (const variable of spec.env) assert.ok(variable in ENV, `${name} reads undescribed ${variable}`);
    }
  });

  test("the parseArgs options of each verb are exactly its table's flags", () => {
    for (const spec of allVerbs()) {
      const options = parseOptions(spec);
      assert.deepEqual(Object.keys(options).sort(), Object.keys(spec.flags).sort(), verbName(spec));
      for (const [flag, option] of Object.entries(options)) {
        const declared = spec.flags[flag];
        assert.equal(option.type, declared?.type, `${verbName(spec)} --${flag}`);
        assert.deepEqual(option.default, declared?.default, `${verbName(spec)} --${flag}`);
      }
    }
  });

  // A command that parsed with its own literal options, or with another verb's
  // entry, would not name itself here; a flag added outside the table fails.
  test("every command parses its arguments through its own table entry", async () => {
    for (const spec of allVerbs()) {
      const load = COMMANDS[spec.path[0] as string];
      assert.ok(load, `no command module for ${verbName(spec)}`);
      const command = await load();
      await assert.rejects(
        command([...spec.path.slice(1), "--no-such-flag"]),
        (error: unknown) =>
          error instanceof FerryError && error.code === "E_BAD_ARGUMENT" && error.message.startsWith(`ferry ${verbName(spec)} has no flag --no-such-flag`),
        verbName(spec),
      );
    }
  });

  test("no command file parses flags by itself", () => {
    for (const { file, text } of sources(join(PACKAGES, "cli", "src"))) {
      if (file.endsWith(join("src", "args.ts"))) continue;
      assert.doesNotMatch(text, /\bparseArgs\s*[(<]/, `${file} calls parseArgs; declare its flags in src/spec/ and use parseVerb`);
    }
  });

  test("every environment variable Ferry reads is described, and the CLI reads them through readEnv", () => {
    const read = new Set<string>();
    for (const name of ["core", "controller", "agent", "cli", "protocol"]) {
      for (const { file, text } of sources(join(PACKAGES, name, "src"))) {
        for (const match of text.matchAll(/\benv\[\s*"([A-Z0-9_]+)"\s*\]|readEnv\(\s*"([A-Z0-9_]+)"\s*\)/g)) read.add((match[1] ?? match[2]) as string);
        if (name === "cli" && !file.endsWith(join("spec", "env.ts"))) assert.doesNotMatch(text, /process\.env\[/, `${file}: use readEnv`);
      }
    }
    assert.ok(read.has("FERRY_CONTROLLER") && read.has("FERRY_LOG_LEVEL") && read.has("FERRY_AGENT_FAULT"), [...read].join(", "));
    for (const variable of read) assert.ok(variable in ENV, `${variable} is read but not described in packages/cli/src/spec/env.ts`);
  });
});

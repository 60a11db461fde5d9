// Per-verb help is printed from the verb table: every flag with its default,
// every variable the verb reads, one example; `ferry VERB --help` and
// `ferry help VERB` print the same.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { DEFAULT_POLICY } from "@ferry/controller";
import { flagTerm, groupHelp, overview, verbHelp } from "../src/help.js";
import { VERBS, allVerbs, verbName } from "../src/spec/index.js";
import { ferry } from "./cli-process.js";

/** The help line of one flag, its wrapped continuation lines joined. */
function flagLine(help: string, term: string): string {
  const lines = help.split("\n");
  const start = lines.findIndex((line) => line.trimStart().startsWith(`${term} `) || line.trim() === term);
  assert.ok(start >= 0, `no line for ${term} in:\n${help}`);
  const rest = lines.slice(start + 1);
  const end = rest.findIndex((line) => !/^ {10,}\S/.test(line));
  return [lines[start], ...rest.slice(0, end === -1 ? rest.length : end)].map((line) => (line as string).trim()).join(" ");
}

describe("per-verb help", () => {
  test("in a 60-column terminal no help line is wider than 60 columns, except the example and single long words", () => {
    for (const spec of allVerbs()) {
      const help = verbHelp(spec, 60);
      const wide = help.split("\n").filter((line) => line.length > 60 && line !== `  ${spec.example}` && /\s\S+\s/.test(line.trim()));
      assert.deepEqual(wide, [], `${verbName(spec)}: lines wider than 60 columns`);
      for (const [name, flag] of Object.entries(spec.flags)) flagLine(help, flagTerm(name, flag));
    }
  });

  test("every verb's help names every flag, every variable it reads and its example", () => {
    for (const spec of allVerbs()) {
      const help = verbHelp(spec, 100);
      assert.ok(help.replace(/\n {2}/, " ").startsWith(`ferry ${verbName(spec)} — ${spec.summary}`), verbName(spec));
      for (const [name, flag] of Object.entries(spec.flags)) flagLine(help, flagTerm(name, flag));
      for (const variable of spec.env) assert.match(help, new RegExp(`^  ${variable} `, "m"), `${verbName(spec)}: ${variable}`);
      assert.ok(help.includes(`Example:\n  ${spec.example}\n`), verbName(spec));
      const wide = help.split("\n").filter((line) => line.length > 100 && line !== `  ${spec.example}`);
      assert.deepEqual(wide, [], `${verbName(spec)}: lines wider than 100 columns`);
    }
  });

  test("defaults are shown as the code applies them", () => {
    const deploy = verbHelp(VERBS.deploy, 100);
    assert.match(flagLine(deploy, "--timeout SECONDS"), /\(default: 900\)$/);
    assert.match(flagLine(deploy, "--mode trial|switch|test|boot"), /\(default: each host's own strategy/);
    const rollout = verbHelp(VERBS["rollout start"], 100);
    assert.match(flagLine(rollout, "--timeout SECONDS"), /\(default: 3600\)$/);
    assert.match(flagLine(rollout, "--max-unavailable N"), new RegExp(`\\(default: ${DEFAULT_POLICY.maxUnavailable}\\)$`));
    assert.match(flagLine(rollout, "--prefetch-timeout DURATION"), /\(default: 30m\)$/);
    assert.match(flagLine(verbHelp(VERBS["rollout list"], 100), "--limit N"), /\(default: 50\)$/);
    assert.match(flagLine(verbHelp(VERBS["dry-activate"], 100), "--timeout SECONDS"), /\(default: 600\)$/);
    const controller = verbHelp(VERBS.controller, 100);
    assert.match(flagLine(controller, "--heartbeat-interval SECONDS"), /\(default: 10\)$/);
    assert.match(flagLine(controller, "--grpc-listen HOST:PORT"), /\(default: 127\.0\.0\.1:7071\)$/);
    assert.match(flagLine(controller, "--log-level LEVEL"), /\(default: \$FERRY_LOG_LEVEL, else info\)$/);
    assert.match(controller, /GET \/healthz/);
    assert.match(controller, /^ {2}FERRY_LOG_LEVEL /m);
    assert.match(verbHelp(VERBS["cache push"], 100), /^ {2}FERRY_CACHE_URL /m);
    assert.match(verbHelp(VERBS["bundle verify"], 100), /^ {2}FERRY_TRUSTED_KEYS /m);
    assert.match(verbHelp(VERBS["bundle create"], 100), /^ {2}FERRY_SIGNING_KEY_FILE /m);
  });

  test("the overview lists every verb, and a group lists its members", () => {
    const text = overview(100);
    for (const spec of allVerbs()) assert.match(text, new RegExp(`^  ${verbName(spec)}\\b`, "m"), verbName(spec));
    const rollout = groupHelp(["rollout"], 100);
    for (const verb of ["start", "status", "list", "pause", "resume", "abort", "promote"]) assert.match(rollout, new RegExp(`ferry rollout ${verb}\\b`));
  });

  test("ferry VERB --help and ferry help VERB print the same, on stdout, with exit 0", async () => {
    for (const words of [["deploy"], ["rollout", "start"], ["agent", "check-config"], ["controller"], ["context", "set"]]) {
      const viaFlag = await ferry([...words, "--help"]);
      const viaHelp = await ferry(["help", ...words]);
      assert.equal(viaFlag.code, 0, viaFlag.stderr);
      assert.equal(viaHelp.code, 0, viaHelp.stderr);
      assert.equal(viaFlag.stdout, viaHelp.stdout);
      assert.ok(viaFlag.stdout.startsWith(`ferry ${words.join(" ")} — `), viaFlag.stdout);
    }
    const group = await ferry(["rollout", "--help"]);
    assert.equal(group.code, 0);
    assert.match(group.stdout, /ferry rollout promote ID/);
    const top = await ferry(["--help"]);
    assert.equal(top.code, 0);
    assert.match(top.stdout, /^Operator verbs/m);
    const bare = await ferry([]);
    assert.equal(bare.code, 2);
    assert.match(bare.stderr, /^Operator verbs/m);
  });

  test("help --json prints the verb's table entry", async () => {
    const result = await ferry(["help", "deploy", "--json"]);
    assert.equal(result.code, 0, result.stderr);
    const entry = result.json<{ verb: string; flags: { name: string; default?: string }[]; env: { name: string }[] }>();
    assert.equal(entry.verb, "deploy");
    assert.equal(entry.flags.find((flag) => flag.name === "--timeout")?.default, "900");
    assert.ok(entry.env.some((variable) => variable.name === "FERRY_CONTROLLER"));
  });

  test("a mistyped verb or flag gets a suggestion and exit status 2", async () => {
    const verb = await ferry(["deplyo"]);
    assert.equal(verb.code, 2);
    assert.match(verb.stderr, /unknown command "ferry deplyo"; did you mean ferry deploy\?/);
    const flag = await ferry(["deploy", "--tiemout", "5", "web-1=/nix/store/x", "--json"]);
    assert.equal(flag.code, 2);
    assert.match(flag.json<{ error: { message: string } }>().error.message, /ferry deploy has no flag --tiemout; did you mean --timeout\?/);
  });
});

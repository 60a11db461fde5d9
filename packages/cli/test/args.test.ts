// parseVerb enforces what the table says: known flags only, their choices,
// required flags, the number of arguments, and fills in defaults.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { FerryError } from "@ferry/core";
import { parseVerb } from "../src/args.js";
import { VERBS } from "../src/spec/index.js";

function badArgument(pattern: RegExp): (error: unknown) => boolean {
  return (error) => error instanceof FerryError && error.code === "E_BAD_ARGUMENT" && pattern.test(error.message);
}

describe("parseVerb", () => {
  test("defaults come from the table", () => {
    const { values, positionals } = parseVerb(VERBS.deploy, ["web-1=/nix/store/x"]);
    assert.equal(values.timeout, "900");
    assert.equal(values.mode, undefined, "no mode: each host's own strategy decides");
    assert.equal(values.wait, false);
    assert.equal(values.controller, undefined);
    assert.deepEqual(positionals, ["web-1=/nix/store/x"]);
    assert.deepEqual(parseVerb(VERBS["host add"], ["web-1", "--token-out", "-"]).values.tag, []);
  });

  test("an unknown flag is refused, with the nearest one suggested", () => {
    assert.throws(() => parseVerb(VERBS.deploy, ["--tiemout", "3", "a=b"]), badArgument(/^ferry deploy has no flag --tiemout; did you mean --timeout\?/));
    assert.throws(() => parseVerb(VERBS["host list"], ["--xyz"]), badArgument(/^ferry host list has no flag --xyz \(/));
  });

  test("a value outside the choices is refused", () => {
    assert.throws(() => parseVerb(VERBS.deploy, ["--mode", "reboot", "a=b"]), badArgument(/--mode must be trial, switch, test, boot; got "reboot"/));
    assert.throws(() => parseVerb(VERBS.completion, ["tcsh"]), badArgument(/ferry completion takes bash, zsh, fish; got "tcsh"/));
  });

  test("a missing required flag, value or argument is refused", () => {
    assert.throws(() => parseVerb(VERBS["keys generate"], ["--name", "k"]), badArgument(/^ferry keys generate needs --out DIR/));
    assert.throws(() => parseVerb(VERBS.deploy, ["a=b", "--timeout"]), badArgument(/^--timeout needs a value \(SECONDS\)/));
    assert.throws(() => parseVerb(VERBS["dry-activate"], []), badArgument(/^usage: ferry dry-activate HOST=STOREPATH/));
    assert.throws(() => parseVerb(VERBS["host remove"], ["a", "b"]), badArgument(/^usage: ferry host remove NAME/));
    assert.throws(() => parseVerb(VERBS["host list"], ["extra"]), badArgument(/^ferry host list takes no arguments, got "extra"/));
    assert.throws(() => parseVerb(VERBS.deploy, ["a=b", "--wait=yes"]), badArgument(/^--wait takes no value/));
  });
});

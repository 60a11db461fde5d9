import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../../", import.meta.url));

test("src/gen/config-validator.ts matches what the schema generates", { timeout: 30_000 }, () => {
  const run = spawnSync(process.execPath, ["--import", "tsx", "packages/agent/gen-config-validator.mjs", "--check"], {
    cwd: root,
    encoding: "utf8",
    timeout: 25_000,
  });
  assert.equal(run.status, 0, run.stderr);
});

// Ajv is a development dependency (the generator's): the shipped package has
// no Ajv, so a runtime import of it would only fail on a host.
test("the agent package validates a configuration without loading Ajv", { timeout: 30_000 }, () => {
  const refuseAjv = `export async function resolve(specifier, context, next) {
    if (specifier === "ajv" || specifier.startsWith("ajv/")) throw new Error("loaded ajv from " + context.parentURL);
    return next(specifier, context);
  }`;
  const script = `
    import { register } from "node:module";
    register("data:text/javascript," + encodeURIComponent(${JSON.stringify(refuseAjv)}));
    const { parseAgentConfig } = await import("@ferry/agent");
    const config = parseAgentConfig({ hostName: "web-1", trustedPublicKeys: ["cache-1:AAAA"] });
    if (config.stateDir !== "/var/lib/ferry-agent") throw new Error("defaults were not filled in");
    try { parseAgentConfig({ hostName: "", trustedPublicKeys: [] }); } catch (error) { process.stdout.write(error.message); }
  `;
  const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], { cwd: root, encoding: "utf8", timeout: 25_000 });
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /hostName: must NOT have fewer than 1 characters; trustedPublicKeys: must NOT have fewer than 1 items/);
});

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FerryError, Nix, ProcessRunner, assertStorePath, formatNetrc } from "@ferry/core";
import { CONNECTION_OPTIONS, parse } from "../args.js";
import { discoverCacheUrl, withConnection } from "../client.js";
import { createOutput } from "../output.js";

export async function cacheCommand(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  if (verb !== "push") throw new FerryError("E_BAD_ARGUMENT", `unknown verb 'cache ${verb ?? ""}': use push`);
  const { values, positionals } = parse(rest, { ...CONNECTION_OPTIONS, "signing-key-file": { type: "string" }, "cache-url": { type: "string" } });
  if (positionals.length === 0) throw new FerryError("E_BAD_ARGUMENT", "usage: ferry cache push STOREPATH... [--signing-key-file KEY]");
  const roots = positionals.map(assertStorePath);
  const out = createOutput(values.json);
  const nix = new Nix(new ProcessRunner());
  return withConnection(values, async (connection) => {
    const cacheUrl = values["cache-url"] ?? process.env["FERRY_CACHE_URL"] ?? (await discoverCacheUrl(connection));
    const closure = await nix.closure(roots);
    const signingKey = values["signing-key-file"];
    if (signingKey) {
      out.note(`signing ${closure.length} paths with ${signingKey}`);
      await nix.sign(signingKey, closure);
    }
    out.note(`uploading the closure of ${roots.length} path(s) (${closure.length} paths) to ${cacheUrl}`);
    await uploadWithToken(nix, cacheUrl, closure, connection.token, connection.transport.caFile);
    out.result({ cacheUrl, roots, paths: closure.length, signed: Boolean(signingKey) }, () => `pushed ${closure.length} paths to ${cacheUrl}\n`);
    return 0;
  });
}

/** `nix copy` authenticates from a netrc file; it lives only for this upload. */
async function uploadWithToken(nix: Nix, cacheUrl: string, paths: string[], token: string, caFile: string | undefined): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "ferry-netrc-"));
  try {
    const netrc = join(dir, "netrc");
    writeFileSync(netrc, formatNetrc([{ machine: new URL(cacheUrl).hostname, login: "ferry", password: token }]), { mode: 0o600 });
    // Nix checks the cache's certificate against the CA the gRPC connection trusts.
    await nix.copyTo(cacheUrl, paths, { netrcFile: netrc, caFile });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

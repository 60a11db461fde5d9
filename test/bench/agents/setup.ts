// Set-up of the agents bench (not measured, but timed): the fixture closures
// pushed to the controller's cache, and N hosts registered through the
// operator API, many AddHost calls at once.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Metadata, credentials, type ServiceError } from "@grpc/grpc-js";
import { OperatorServiceClient, type AddHostResponse } from "@ferry/protocol";
import { mustExec } from "../../harness/exec.js";
import { ferry } from "../../harness/ferry-cli.js";

const CLOSURE_NIX = fileURLToPath(new URL("../closure.nix", import.meta.url));

/** A two-path closure of closure.nix (one leaf of 512 KiB); `salt` makes each one new. */
export async function buildClosure(salt: string): Promise<string> {
  const argv = ["nix-build", CLOSURE_NIX, "--no-out-link", "--arg", "count", "1", "--arg", "totalMiB", "1", "--argstr", "salt", salt];
  return (await mustExec([...argv, "--option", "substituters", ""], { timeoutMs: 300_000 })).trim();
}

/** `ferry cache push --unsigned`: the sim agents check no signatures, and deploys pass --allow-unsigned. */
export async function pushUnsigned(env: Record<string, string>, paths: string[]): Promise<void> {
  const pushed = await ferry(["cache", "push", "--unsigned", ...paths], env, 300_000);
  if (pushed.code !== 0) throw new Error(`ferry cache push exited ${pushed.code}: ${pushed.stderr}`);
}

/** Host names that sort in index order, as rollout waves are planned by name. */
export function hostNames(count: number): string[] {
  const width = Math.max(5, String(count - 1).length);
  return Array.from({ length: count }, (_, i) => `bench-${String(i).padStart(width, "0")}`);
}

/** Registers every name with AddHost, `concurrency` calls in flight, and returns each host's agent token. */
export async function registerHosts(grpcAddress: string, tokenFile: string, names: string[], concurrency = 32): Promise<string[]> {
  const client = new OperatorServiceClient(grpcAddress, credentials.createInsecure());
  const metadata = new Metadata();
  metadata.set("authorization", `Bearer ${readFileSync(tokenFile, "utf8").trim()}`);
  const tokens = new Array<string>(names.length);
  let next = 0;
  const addOne = (name: string): Promise<AddHostResponse> =>
    new Promise((resolve, reject) =>
      client.addHost({ name, tags: ["bench"] }, metadata, { deadline: new Date(Date.now() + 120_000) }, (error: ServiceError | null, response) =>
        error ? reject(new Error(`AddHost ${name}: ${error.details}`)) : resolve(response),
      ),
    );
  const lane = async (): Promise<void> => {
    while (next < names.length) {
      const index = next++;
      tokens[index] = (await addOne(names[index] as string)).agentToken;
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, lane));
  } finally {
    client.close();
  }
  return tokens;
}

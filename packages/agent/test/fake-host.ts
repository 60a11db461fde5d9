// A host made of temp symlinks and a scripted Nix runner, for tests that
// drive the agent above the transaction (reconciler, intent policy, dry
// runs): nix-env --set moves the profile, switch-to-configuration switch/test
// moves current-system, every path is signed by the host's key, and every
// command is recorded.
import { mkdirSync, readdirSync, readlinkSync, symlinkSync, unlinkSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import type { CommandResult, CommandRunner, CommandSpec } from "@ferry/core";
import { pathInfoJson, type TestKey } from "./signed-paths.js";

export const SWITCH = "/bin/switch-to-configuration";

export function setLink(link: string, target: string): void {
  mkdirSync(dirname(link), { recursive: true });
  try {
    unlinkSync(link);
  } catch {
    // No link yet.
  }
  symlinkSync(target, link);
}

/** Like nix-env --set: a new generation link, and the profile pointed at it. */
export function setProfileLink(profile: string, target: string): void {
  mkdirSync(dirname(profile), { recursive: true });
  const generations = readdirSync(dirname(profile)).filter((name) => name.startsWith(`${basename(profile)}-`)).length;
  const generation = `${basename(profile)}-${generations + 1}-link`;
  symlinkSync(target, join(dirname(profile), generation));
  setLink(profile, generation);
}

/** The store path a profile selects, through its generation link; "" without one. */
export function profileTarget(profile: string): string {
  try {
    return readlinkSync(join(dirname(profile), readlinkSync(profile)));
  } catch {
    return "";
  }
}

export type Script = (argv: readonly string[]) => Partial<CommandResult> | undefined;

export class FakeHostRunner implements CommandRunner {
  readonly calls: string[][] = [];
  script: Script = () => undefined;

  constructor(readonly f: { profile: string; currentLink: string; key: TestKey }) {}

  async run(spec: CommandSpec): Promise<CommandResult> {
    const argv = [...spec.argv];
    this.calls.push(argv);
    const [program, ...args] = argv;
    const defaults: Partial<CommandResult> =
      program === "nix" && args.includes("--sigs")
        ? { stdout: JSON.stringify([pathInfoJson(args.at(-1) as string, this.f.key)]) }
        : program === "nix" && args.includes("path-info")
          ? { stdout: JSON.stringify([{ path: args.at(-1), narSize: 4096 }]) }
          : {};
    const result: CommandResult = { argv, exitCode: 0, signal: null, stdout: "", stderr: "", timedOut: false, ...defaults, ...this.script(argv) };
    if (program === "nix-env" && result.exitCode === 0 && args[0] === "-p" && args[2] === "--set") setProfileLink(this.f.profile, args[3] as string);
    if (program?.endsWith(SWITCH) && (args[0] === "switch" || args[0] === "test") && !result.timedOut)
      setLink(this.f.currentLink, program.slice(0, -SWITCH.length));
    return result;
  }

  /** Commands that change the machine or run a system's own code: fetches, profile sets, switch scripts (dry-activate too). */
  get changes(): string[][] {
    return this.calls.filter(
      ([program, op], i) =>
        (program === "nix-store" && op === "--realise" && this.calls[i]?.includes("--option")) ||
        (program === "nix-env" && op === "-p") ||
        program?.endsWith(SWITCH),
    );
  }
}

// Health checks the machine cannot run (packages/agent/src/check-validation.ts):
// refused at agent start-up and by `ferry agent check-config`, because such a
// check fails before the switch too and would silently turn rollback off.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FerryError, ProcessRunner, silentLogger, type CommandResult, type CommandRunner, type CommandSpec } from "@ferry/core";
import { startAgent } from "../src/agent.js";
import { assertChecksRunnable, machineCheckProblems } from "../src/check-validation.js";
import { parseAgentConfig, type HealthCheck } from "../src/config.js";

const dir = mkdtempSync(join(tmpdir(), "ferry-check-validation-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const script = join(dir, "check.sh");
writeFileSync(script, "#!/bin/sh\nexit 0\n");
chmodSync(script, 0o755);
const notExecutable = join(dir, "not-executable.sh");
writeFileSync(notExecutable, "#!/bin/sh\nexit 0\n");
chmodSync(notExecutable, 0o644);

/** systemctl as a machine with systemd answers it: LoadState per unit. */
class FakeSystemctl implements CommandRunner {
  readonly calls: string[][] = [];
  constructor(
    private readonly loadStates: Record<string, string>,
    private readonly answer?: (argv: readonly string[]) => Partial<CommandResult> | Error,
  ) {}

  async run(spec: CommandSpec): Promise<CommandResult> {
    this.calls.push([...spec.argv]);
    const custom = this.answer?.(spec.argv);
    if (custom instanceof Error) throw custom;
    const unit = spec.argv.at(-1) as string;
    return { argv: spec.argv, exitCode: 0, signal: null, stdout: `${this.loadStates[unit] ?? "loaded"}\n`, stderr: "", timedOut: false, ...custom };
  }
}

const command = (program: string): HealthCheck => ({ type: "command", argv: [program, "--probe"], timeout: 5, strict: false });
const systemd = (...units: string[]): HealthCheck => ({ type: "systemd", units, strict: false });

async function rejectsBadConfig(promise: Promise<unknown>, ...patterns: RegExp[]): Promise<FerryError> {
  let caught: unknown;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof FerryError, `expected E_BAD_CONFIG, got ${String(caught)}`);
  assert.equal(caught.code, "E_BAD_CONFIG", caught.message);
  for (const pattern of patterns) assert.match(caught.message, pattern);
  return caught;
}

describe("machineCheckProblems: command checks", () => {
  test("an executable program passes", async () => {
    assert.deepEqual(await machineCheckProblems([command(script), command(process.execPath)], new FakeSystemctl({})), []);
  });

  test("a program that does not exist, is not executable or is a directory: each named with its index", async () => {
    const problems = await machineCheckProblems([command(script), command(join(dir, "missing")), command(notExecutable), command(dir)], new FakeSystemctl({}));
    assert.deepEqual(
      problems.map((problem) => [problem.index, problem.reason]),
      [
        [1, `program ${join(dir, "missing")} does not exist`],
        [2, `program ${notExecutable} is not executable`],
        [3, `program ${dir} is not a file`],
      ],
    );
    assert.equal(problems[0]?.name, `command:${join(dir, "missing")} --probe`);
  });
});

describe("machineCheckProblems: systemd checks", () => {
  test("asks systemd for each unit's LoadState, one unit per call, after --", async () => {
    const runner = new FakeSystemctl({});
    assert.deepEqual(await machineCheckProblems([systemd("nginx.service", "postgresql.service")], runner), []);
    assert.deepEqual(runner.calls, [
      ["systemctl", "show", "--property=LoadState", "--value", "--", "nginx.service"],
      ["systemctl", "show", "--property=LoadState", "--value", "--", "postgresql.service"],
    ]);
  });

  test("a unit systemd does not know (not-found) or a masked unit is refused", async () => {
    const problems = await machineCheckProblems(
      [systemd("sshd.service"), systemd("sshd.service", "nginx.servce"), systemd("debug-shell.service")],
      new FakeSystemctl({ "nginx.servce": "not-found", "debug-shell.service": "masked" }),
    );
    assert.deepEqual(
      problems.map((problem) => [problem.index, problem.name, problem.reason]),
      [
        [
          1,
          "systemd:sshd.service,nginx.servce",
          "unit nginx.servce is not known to systemd (LoadState=not-found); check its name with systemctl list-unit-files",
        ],
        [2, "systemd:debug-shell.service", "unit debug-shell.service is masked, so it never runs"],
      ],
    );
  });

  test("a machine without systemctl: the check can never pass, and the reason says so", async () => {
    const runner = new FakeSystemctl({}, () => new FerryError("E_COMMAND_FAILED", "cannot start systemctl: spawn systemctl ENOENT"));
    const [problem, ...rest] = await machineCheckProblems([systemd("a.service", "b.service")], runner);
    assert.deepEqual(rest, [], "one problem per check, not one per unit");
    assert.match(problem?.reason ?? "", /systemctl cannot run on this machine \(cannot start systemctl: spawn systemctl ENOENT\)/);
    assert.match(problem?.reason ?? "", /without systemd a systemd check never passes/);
  });

  test("a machine where systemd is not running: refused, with systemctl's own words", async () => {
    const runner = new FakeSystemctl({}, () => ({
      exitCode: 1,
      stdout: "",
      stderr: "System has not been booted with systemd as init system (PID 1). Can't operate.\nFailed to connect to bus: Host is down\n",
    }));
    const [problem] = await machineCheckProblems([systemd("nginx.service")], runner);
    assert.match(problem?.reason ?? "", /systemd did not answer for nginx\.service \(System has not been booted with systemd as init system/);
  });

  test("this machine, for real, when it runs no systemd", { skip: existsSync("/run/systemd/system") ? "systemd runs here" : false }, async () => {
    const [problem] = await machineCheckProblems([systemd("nginx.service")], new ProcessRunner());
    assert.match(problem?.reason ?? "", /without (a running )?systemd a systemd check never passes/);
  });
});

describe("assertChecksRunnable", () => {
  test("refuses with E_BAD_CONFIG, every problem in index order", async () => {
    await rejectsBadConfig(
      assertChecksRunnable([systemd("nginx.service"), command(join(dir, "missing")), command(script)], new FakeSystemctl({ "nginx.service": "not-found" })),
      /healthChecks\[0\] \(systemd:nginx\.service\): unit nginx\.service is not known to systemd.*; healthChecks\[1\] \(command:.*missing --probe\): program .* does not exist/,
      /turn rollback off/,
    );
  });

  test("checks that can all run: resolves", async () => {
    await assertChecksRunnable(
      [systemd("sshd.service"), command(script), { type: "http", url: "http://127.0.0.1:1/", expectStatus: 200, timeout: 1, strict: false }],
      new FakeSystemctl({}),
    );
  });

  test("the agent refuses to start with such a check, before it touches anything", async () => {
    const stateDir = join(dir, "agent-state");
    const config = parseAgentConfig({
      controllerUrl: "ws://127.0.0.1:1/agent",
      hostName: "web1",
      tokenFile: join(dir, "token"),
      substituters: ["http://127.0.0.1:1/cache"],
      trustedPublicKeys: ["ferry-1:QUJD"],
      stateDir,
      healthChecks: [
        { type: "command", argv: [script] },
        { type: "systemd", units: ["nginx.service"] },
      ],
    });
    await rejectsBadConfig(
      startAgent(config, silentLogger(), new FakeSystemctl({ "nginx.service": "not-found" })),
      /healthChecks\[1\] \(systemd:nginx\.service\)/,
    );
    assert.equal(existsSync(stateDir), false, "no state directory was created");
  });
});

// Checks for the Nix side of Ferry: every .nix file parses, and (when
// NIXPKGS_LIB points at nixpkgs' lib/ folder) the NixOS modules evaluate to the
// expected systemd units, agent configuration and assertion messages.
//
//   NIXPKGS_LIB=/path/to/nixpkgs/lib node --import tsx --test test/nix/modules.test.ts
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { PackageLock } from "../../nix/npm-lock.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const evalFile = join(root, "test", "nix", "eval-modules.nix");
const NIX_TIMEOUT_MS = 30_000;

const CREDENTIAL = "/run/credentials/ferry-agent.service/token";
const TOKEN_FILE = "/var/lib/ferry-secrets/agent-token";
// Every key the agent accepts in its JSON configuration.
const AGENT_CONFIG_KEYS = [
  "activationTimeout",
  "allowInsecureTransport",
  "allowedUnsignedModes",
  "confirmTimeout",
  "controllerUrl",
  "healthChecks",
  "hostName",
  "intentPublicKeys",
  "keepGenerations",
  "logLevel",
  "profile",
  "requireSignedIntents",
  "selfRestart",
  "stateDir",
  "strategy",
  "substituters",
  "tokenFile",
  "trustedPublicKeys",
];

interface ServiceDef {
  description?: string;
  wantedBy?: string[];
  wants?: string[];
  after?: string[];
  path?: string[];
  environment?: Record<string, string>;
  restartIfChanged?: boolean;
  stopIfChanged?: boolean;
  unitConfig?: Record<string, unknown>;
  serviceConfig?: Record<string, unknown>;
}

interface Scenario {
  failedAssertions: string[];
  warnings: string[];
  etc: Record<string, string>;
  services: Record<string, ServiceDef>;
  firewallPorts: number[];
  systemPackages: string[];
  tmpfiles: Record<string, Record<string, Record<string, Record<string, string>>>>;
  users: Record<string, Record<string, unknown>>;
  groups: Record<string, Record<string, unknown>>;
  agent: {
    enable: boolean;
    hostName: string;
    strategy: string;
    confirmTimeout: number;
    activationTimeout: number;
    keepGenerations: number;
    allowInsecureTransport: boolean;
    packageName: string;
    settings: Record<string, unknown>;
  };
  controller: {
    enable: boolean;
    dataDir: string;
    listenAddress: string;
    grpcListenAddress: string;
    openFirewall: boolean;
    privateCache: boolean;
    metricsPublic: boolean;
    settings: Record<string, unknown>;
  };
  nginx: {
    enable?: boolean;
    virtualHosts?: Record<
      string,
      { listen: { addr: string; port: number }[]; locations: Record<string, { alias?: string; return?: string; extraConfig?: string }> }
    >;
  };
}

interface PackageScenario {
  name: string;
  pname: string;
  version: string;
  mainProgram: string;
  npmBuildScript: string;
  npmRebuildFlags: string[];
  env: Record<string, string>;
  nativeBuildInputs: string[];
  hasNpmDepsHash: boolean;
  npmConfigHookIsImportNpmLocks: boolean;
  importNpmLock: {
    package: Record<string, unknown>;
    packageLock: PackageLock;
    version: string;
    hasNpmRoot: boolean;
  };
  installPhase: string;
  sourceEvaluable: boolean;
  srcTop?: string[];
  srcCli?: string[];
}

interface FlakeScenario {
  packages: Record<string, Record<string, string>>;
  sameDefault: Record<string, boolean>;
  mainProgram: string;
  overlayPackage: string;
  hasNpmDepsHash: Record<string, boolean>;
  nixosModules: string[];
  moduleFiles: Record<string, boolean>;
}

function nixFiles(): string[] {
  const found: string[] = [join(root, "flake.nix")];
  const walk = (dir: string): void => {
    if (!existsSync(dir)) return;
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name === "node_modules" || entry.name.startsWith(".")) continue;
      const full = join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile() && entry.name.endsWith(".nix")) found.push(full);
    }
  };
  for (const dir of ["nix", "deploy", join("test", "nix")]) walk(join(root, dir));
  return found;
}

function run(program: string, args: string[]): string {
  try {
    return execFileSync(program, args, {
      cwd: root,
      encoding: "utf8",
      timeout: NIX_TIMEOUT_MS,
      stdio: ["ignore", "pipe", "pipe"],
    });
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(`${program} ${args.join(" ")} failed: ${e.stderr?.trim() || e.message}`);
  }
}

// ---------------------------------------------------------------- always run

test("every .nix file parses", async (t) => {
  const files = nixFiles();
  assert.ok(files.length >= 8, `expected the Nix files of nix/, deploy/ and flake.nix, found ${files.length}`);
  for (const file of files) {
    await t.test(relative(root, file), () => {
      run("nix-instantiate", ["--parse", file]);
    });
  }
});

test("deploy.sh is valid bash", () => {
  run("bash", ["-n", join(root, "deploy", "fleet", "deploy.sh")]);
});

// ------------------------------------------------ module evaluation (NIXPKGS_LIB)

const libDir = process.env.NIXPKGS_LIB ? resolve(process.env.NIXPKGS_LIB) : undefined;
const skip = libDir
  ? false
  : "NIXPKGS_LIB not set: point it at the lib/ folder of nixpkgs (e.g. a checkout of nix-community/nixpkgs.lib) to evaluate the NixOS modules";

const cache = new Map<string, unknown>();
function evalScenario<T = Scenario>(name: string): T {
  if (!cache.has(name)) {
    assert.ok(libDir && existsSync(join(libDir, "default.nix")), `NIXPKGS_LIB=${libDir} is not a nixpkgs lib/ folder`);
    const out = run("nix-instantiate", [
      "--eval",
      "--strict",
      "--json",
      // --eval is read-only by default; the agent's config file (builtins.toFile)
      // must really be written so that the test can read it back.
      "--read-write-mode",
      evalFile,
      "--argstr",
      "libPath",
      libDir,
      "-A",
      name,
    ]);
    cache.set(name, JSON.parse(out));
  }
  return cache.get(name) as T;
}

function service(s: Scenario, name: string): ServiceDef & { serviceConfig: Record<string, unknown> } {
  const unit = s.services[name];
  assert.ok(unit, `systemd.services.${name} is not defined`);
  assert.ok(unit.serviceConfig, `systemd.services.${name}.serviceConfig is not defined`);
  return unit as ServiceDef & { serviceConfig: Record<string, unknown> };
}

const AGENT_EXEC = /^\/nix\/store\/[^ ]+-ferry-[^/ ]+\/bin\/ferry-agent --config (\/nix\/store\/[^ ]+-ferry-agent\.json)$/;

function agentConfigFile(s: Scenario): Record<string, unknown> {
  const exec = service(s, "ferry-agent").serviceConfig.ExecStart;
  assert.equal(typeof exec, "string");
  const match = AGENT_EXEC.exec(exec as string);
  assert.ok(match?.[1], `unexpected ExecStart: ${String(exec)}`);
  return JSON.parse(readFileSync(match[1], "utf8")) as Record<string, unknown>;
}

test("agent: systemd unit", { skip }, () => {
  const s = evalScenario("agentDefault");
  assert.deepEqual(s.failedAssertions, []);
  const unit = service(s, "ferry-agent");
  assert.match(String(unit.serviceConfig.ExecStart), AGENT_EXEC);
  assert.equal(unit.restartIfChanged, false);
  assert.equal(unit.stopIfChanged, false);
  assert.equal(unit.serviceConfig.KillMode, "process");
  assert.equal(unit.serviceConfig.Restart, "always");
  assert.equal(unit.serviceConfig.RestartForceExitStatus, 75, "the agent's self-restart status restarts it whatever Restart= says");
  assert.equal(unit.serviceConfig.StateDirectory, "ferry-agent");
  assert.equal(unit.serviceConfig.LoadCredential, `token:${TOKEN_FILE}`);
  assert.equal(unit.serviceConfig.User, undefined, "the agent must run as root");
  assert.equal(unit.serviceConfig.DynamicUser, undefined, "the agent must run as root");
  assert.equal(unit.unitConfig?.["X-StopOnRemoval"], false);
  assert.deepEqual(unit.wantedBy, ["multi-user.target"]);
  assert.ok(unit.after?.includes("network-online.target"));
  assert.ok(unit.wants?.includes("network-online.target"));
  assert.deepEqual(
    unit.path?.map((p) => p.replace(/^\/nix\/store\/[^-]+-/, "")),
    ["nix", "systemd"],
  );
  assert.deepEqual(s.systemPackages, ["ferry-0.1.0"]);
});

test("agent: rendered JSON configuration", { skip }, () => {
  const s = evalScenario("agentDefault");
  const config = agentConfigFile(s);
  assert.deepEqual(Object.keys(config).sort(), AGENT_CONFIG_KEYS);
  assert.deepEqual(config, {
    activationTimeout: 600,
    allowInsecureTransport: false,
    allowedUnsignedModes: ["trial", "switch", "test", "boot", "dry-activate"],
    intentPublicKeys: [],
    requireSignedIntents: false,
    confirmTimeout: 120,
    controllerUrl: "wss://controller.example:7070/agent",
    healthChecks: [],
    hostName: "web-1",
    keepGenerations: 5,
    logLevel: "info",
    profile: "/nix/var/nix/profiles/system",
    selfRestart: true,
    stateDir: "/var/lib/ferry-agent",
    strategy: "trial",
    substituters: ["https://controller.example:7070/cache"],
    tokenFile: CREDENTIAL,
    trustedPublicKeys: ["ferry-test-1:dGVzdC1rZXktbm90LXJlYWwtMDEyMzQ1Njc4OWFiY2RlZg=="],
  });
  assert.deepEqual(config, s.agent.settings);
});

test("agent: defaults", { skip }, () => {
  const { agent } = evalScenario("agentDefault");
  assert.equal(agent.hostName, "web-1", "hostName defaults to networking.hostName");
  assert.equal(agent.strategy, "trial");
  assert.equal(agent.confirmTimeout, 120);
  assert.equal(agent.activationTimeout, 600);
  assert.equal(agent.keepGenerations, 5);
  assert.equal(agent.packageName, "ferry-0.1.0", "package falls back to callPackage ../package.nix");
});

test("agent: typed health checks and settings overrides", { skip }, () => {
  const s = evalScenario("agentFull");
  assert.deepEqual(s.failedAssertions, []);
  const config = agentConfigFile(s);
  assert.ok(Object.keys(config).every((key) => [...AGENT_CONFIG_KEYS, "preSwitchControllerWait", "metricsTextfileDir"].includes(key)));
  assert.equal(config.metricsTextfileDir, "/var/lib/prometheus-node-exporter-text-files");
  assert.equal(config.hostName, "edge-7");
  assert.equal(config.preSwitchControllerWait, 0, "0 is a value, not unset");
  assert.equal(config.strategy, "switch");
  assert.equal(config.confirmTimeout, 60);
  assert.equal(config.logLevel, "debug");
  assert.deepEqual(config.healthChecks, [
    { type: "systemd", units: ["nginx.service"], strict: true },
    { type: "http", url: "http://127.0.0.1:8080/healthz", expectStatus: 200, timeout: 5, strict: false },
    { type: "http", url: "http://127.0.0.1:8081/", expectStatus: 204, bodyContains: "ok", timeout: 2, strict: true },
    { type: "command", argv: ["/run/current-system/sw/bin/true"], timeout: 30, strict: false },
  ]);
});

test("agent: signed intents policy is rendered as set", { skip }, () => {
  const s = evalScenario("agentIntents");
  assert.deepEqual(s.failedAssertions, []);
  const config = agentConfigFile(s);
  assert.deepEqual(config.intentPublicKeys, ["ferry-ci-1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="]);
  assert.equal(config.requireSignedIntents, true);
  assert.deepEqual(config.allowedUnsignedModes, ["dry-activate"]);
});

test("agent: disabled means no unit", { skip }, () => {
  const s = evalScenario("agentDisabled");
  assert.deepEqual(s.failedAssertions, []);
  assert.equal(s.services["ferry-agent"], undefined);
  assert.deepEqual(s.systemPackages, []);
});

test("agent: a standalone host (controllerUrl = null) gets no service, only the config apply-bundle reads", { skip }, () => {
  const s = evalScenario("agentStandalone");
  assert.deepEqual(s.failedAssertions, []);
  assert.deepEqual(s.warnings, []);
  assert.equal(s.services["ferry-agent"], undefined, "nothing to connect to, so no agent service");
  assert.deepEqual(s.systemPackages, ["ferry-0.1.0"], "the CLI is there for ferry agent apply-bundle");
  const file = s.etc["ferry/agent.json"];
  assert.ok(file, "the configuration is rendered to /etc/ferry/agent.json");
  const config = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  assert.deepEqual(config, s.agent.settings);
  for (const key of ["controllerUrl", "tokenFile", "substituters", "selfRestart"]) assert.equal(config[key], undefined, `${key} is not written`);
  assert.equal(config.hostName, "kiosk-1");
  // A connected host gets the same file, the one its service runs with.
  const connected = evalScenario("agentDefault");
  assert.deepEqual(JSON.parse(readFileSync(connected.etc["ferry/agent.json"] ?? "", "utf8")), agentConfigFile(connected));
});

test("agent: several controller replicas are written as controllerUrls", { skip }, () => {
  const s = evalScenario("agentReplicas");
  assert.deepEqual(s.failedAssertions, []);
  const config = agentConfigFile(s);
  assert.deepEqual(config.controllerUrls, ["wss://ferry-1.example:7070/agent", "wss://ferry-2.example:7070/agent"]);
  assert.equal(config.controllerUrl, undefined, "only the key the operator used is written");
  assert.equal(config.tokenFile, CREDENTIAL);
  assert.ok(s.services["ferry-agent"], "a host with controllers runs the agent");
});

test("agent: controllerUrl and controllerUrls together, or neither, is refused with the fix", { skip }, () => {
  assert.ok(
    evalScenario("agentReplicasBothUrls").failedAssertions.some(
      (message) => /controllerUrl and controllerUrls are both set/.test(message) && /Keep one/.test(message),
    ),
  );
  const neither = evalScenario("agentNoControllerUrl").failedAssertions;
  assert.ok(
    neither.some((message) => /names no controller/.test(message) && /controllerUrl = null/.test(message) && /controllerUrls = \[/.test(message)),
    neither.join("\n"),
  );
  const bad = evalScenario("agentReplicasBad").failedAssertions.join("\n");
  assert.match(bad, /controllerUrls must hold ws:\/\/ or wss:\/\/ URLs whose path ends in \/agent/);
  assert.match(bad, /got "https:\/\/ferry-3\.example\/"/);
  assert.match(bad, /ws:\/\/ferry-2\.example:7070\/agent .*in clear/s, "each URL goes through the plaintext check");
});

test("agent: a token on a standalone host is reported as unused", { skip }, () => {
  const s = evalScenario("agentStandaloneWithToken");
  assert.deepEqual(s.failedAssertions, []);
  assert.equal(s.warnings.length, 1);
  assert.match(s.warnings[0] ?? "", /tokenFile is set but controllerUrl is null/);
});

test("agent: assertions explain what to fix", { skip }, async (t) => {
  const cases: [scenario: string, patterns: RegExp[]][] = [
    ["agentNoTrustedKey", [/trustedPublicKeys is empty/, /nix-store --generate-binary-cache-key/]],
    ["agentBadKey", [/trustedPublicKeys must be `name:base64` keys/, /got: not a key/]],
    ["agentNoSubstituter", [/substituters is empty/, /\/cache" \]/]],
    ["agentBadSubstituter", [/substituters must be http:\/\/, https:\/\/ or file:\/\/ URLs/, /got: controller:7070\/cache/]],
    ["agentTokenInStore", [/tokenFile is in the Nix store/, /\/var\/lib\/ferry-secrets\/agent-token/]],
    ["agentNoToken", [/tokenFile is not set/, /controllerUrl = null for a standalone host/]],
    ["agentBadUrl", [/controllerUrl must be a ws:\/\/ or wss:\/\/ URL/, /got "http:\/\/controller:7070\/"/]],
    [
      "agentUnrunnableChecks",
      [
        /health checks that cannot run/,
        /healthChecks\[0\] \(systemd\): "--host=evil" is not a systemd unit name/,
        /healthChecks\[2\] \(http\): url "http:\/\/local host:8080\/health" is not an http:\/\/ or https:\/\/ URL/,
        /healthChecks\[4\] \(command\): argv\[0\] "sh" is not an absolute path/,
      ],
    ],
    ["agentIntentsNoKey", [/requireSignedIntents is set but intentPublicKeys is empty/, /ferry keys generate/]],
    ["agentBadIntentKey", [/intentPublicKeys must be ed25519 public keys/, /got: ferry-ci-1:AAAA/]],
  ];
  for (const [scenario, patterns] of cases) {
    await t.test(scenario, () => {
      const { failedAssertions } = evalScenario(scenario);
      assert.equal(failedAssertions.length, 1, `expected one failed assertion, got: ${failedAssertions.join("\n")}`);
      for (const pattern of patterns) assert.match(failedAssertions[0] ?? "", pattern);
    });
  }
});

test("agent: plaintext to another machine is refused with the reason, unless allowed", { skip }, () => {
  const refused = evalScenario("agentInsecure").failedAssertions;
  assert.equal(refused.length, 1, refused.join("\n"));
  assert.match(refused[0] ?? "", /ws:\/\/controller:7070\/agent, http:\/\/controller:7070\/cache would send this host's agent token\s+in clear/);
  assert.match(refused[0] ?? "", /allowInsecureTransport = true/);
  assert.doesNotMatch(refused[0] ?? "", /cache\.example\.org/, "https substituters are fine");
  const allowed = evalScenario("agentInsecureAllowed");
  assert.deepEqual(allowed.failedAssertions, []);
  assert.equal(agentConfigFile(allowed).allowInsecureTransport, true);
  assert.deepEqual(evalScenario("agentLoopback").failedAssertions, [], "loopback is not a network");
});

test("agent: CA file and client certificate reach the configuration", { skip }, () => {
  const s = evalScenario("agentTls");
  assert.deepEqual(s.failedAssertions, []);
  const config = agentConfigFile(s);
  assert.equal(config.caFile, "/etc/ferry/ca.pem");
  assert.equal(config.tlsCertFile, "/var/lib/ferry-secrets/agent.crt");
  assert.equal(config.tlsKeyFile, "/var/lib/ferry-secrets/agent.key");
  assert.equal(config.allowInsecureTransport, false);
  const bad = evalScenario<Record<string, Scenario>>("agentTlsBad");
  assert.match(bad.halfPair?.failedAssertions.join("\n") ?? "", /tlsCertFile and tlsKeyFile go together/);
  assert.match(bad.keyInStore?.failedAssertions.join("\n") ?? "", /tlsKeyFile is in the Nix store/);
});

test("controller: TLS from systemd credentials, client CAs, private cache, reload by SIGHUP", { skip }, () => {
  const s = evalScenario("controllerTls");
  assert.deepEqual(s.failedAssertions, []);
  assert.equal(s.controller.privateCache, true);
  const sc = service(s, "ferry-controller").serviceConfig;
  assert.match(
    String(sc.ExecStart),
    / controller --data-dir \/var\/lib\/ferry-controller --listen 0\.0\.0\.0:7070 --grpc-listen 127\.0\.0\.1:7071 --tls-cert \/run\/credentials\/ferry-controller\.service\/tls-cert --tls-key \/run\/credentials\/ferry-controller\.service\/tls-key --client-ca \/etc\/ferry\/operators-ca\.pem --agent-client-ca \/etc\/ferry\/agents-ca\.pem --private-cache$/,
  );
  assert.deepEqual(sc.LoadCredential, ["tls-cert:/etc/ferry/tls/fullchain.pem", "tls-key:/etc/ferry/tls/key.pem"]);
  assert.match(String(sc.ExecReload), /-coreutils\/bin\/kill -HUP \$MAINPID$/);
  assert.equal(sc.SupplementaryGroups, undefined);
});

test("controller: metricsPublic serves /metrics without a token; off by default", { skip }, () => {
  const s = evalScenario("controllerMetricsPublic");
  assert.deepEqual(s.failedAssertions, []);
  assert.equal(s.controller.metricsPublic, true);
  assert.match(String(service(s, "ferry-controller").serviceConfig.ExecStart), / --grpc-listen 127\.0\.0\.1:7071 --metrics-public$/);
  assert.equal(evalScenario("controllerDefault").controller.metricsPublic, false);
});

test("controller: ACME certificates read in place under their group", { skip }, () => {
  const s = evalScenario("controllerAcme");
  assert.deepEqual(s.failedAssertions, []);
  const sc = service(s, "ferry-controller").serviceConfig;
  assert.match(
    String(sc.ExecStart),
    / --tls-cert \/var\/lib\/acme\/ferry\.example\.net\/fullchain\.pem --tls-key \/var\/lib\/acme\/ferry\.example\.net\/key\.pem$/,
  );
  assert.deepEqual(sc.SupplementaryGroups, ["acme"]);
  assert.equal(sc.LoadCredential, undefined, "systemd does not refresh credentials on reload; renewed files must be read in place");
  assert.ok(sc.ExecReload);
  assert.equal(service(evalScenario("controllerDefault"), "ferry-controller").serviceConfig.ExecReload, undefined, "nothing to reload without TLS");
});

test("controller: TLS settings that cannot work are refused with the reason", { skip }, () => {
  const bad = evalScenario<Record<string, Scenario>>("controllerTlsBad");
  assert.match(bad.halfPair?.failedAssertions.join("\n") ?? "", /tls\.certFile and tls\.keyFile go together/);
  assert.match(bad.keyInStore?.failedAssertions.join("\n") ?? "", /tls\.keyFile is in the Nix store/);
  assert.match(bad.clientCaWithoutTls?.failedAssertions.join("\n") ?? "", /clientCaFile and tls\.agentClientCaFile need TLS/);
});

test("controller: a replica gets its database URL by environment, its password file and admin token as credentials", { skip }, () => {
  const s = evalScenario("controllerReplica");
  assert.deepEqual(s.failedAssertions, []);
  const unit = service(s, "ferry-controller");
  assert.deepEqual(unit.environment, {
    FERRY_DATABASE_URL: "postgres://ferry@db.example.net:5432/ferry",
    PGPASSFILE: "/run/credentials/ferry-controller.service/pgpass",
  });
  assert.doesNotMatch(String(unit.serviceConfig.ExecStart), /postgres|database/, "never on the command line");
  assert.deepEqual(unit.serviceConfig.LoadCredential, [
    "tls-cert:/etc/ferry/tls/fullchain.pem",
    "tls-key:/etc/ferry/tls/key.pem",
    "pgpass:/run/secrets/ferry-pgpass",
    "admin-token:/run/secrets/ferry-admin-token",
  ]);
  assert.match(String(unit.serviceConfig.ExecStartPre), /-ferry-controller-admin-token\/bin\/ferry-controller-admin-token$/);
  assert.ok(unit.after?.includes("postgresql.service"), "a local PostgreSQL starts first");

  const plain = service(evalScenario("controllerDefault"), "ferry-controller");
  assert.equal(plain.serviceConfig.ExecStartPre, undefined, "no admin token to install");
  assert.deepEqual(plain.environment ?? {}, {});
  assert.equal(plain.serviceConfig.LoadCredential, undefined);
  assert.ok(!plain.after?.includes("postgresql.service"));
});

test("controller: a percent-encoded socket path in the database URL is escaped for systemd", { skip }, () => {
  const s = evalScenario("controllerReplicaSocket");
  assert.deepEqual(s.failedAssertions, []);
  assert.equal(service(s, "ferry-controller").environment?.["FERRY_DATABASE_URL"], "postgresql://ferry@%%2Frun%%2Fpostgresql/ferry");
});

test("controller: replica settings that cannot work are refused with the reason", { skip }, () => {
  const bad = evalScenario<Record<string, Scenario>>("controllerReplicaBad");
  const failed = (name: string): string => bad[name]?.failedAssertions.join("\n") ?? "";
  assert.match(failed("passwordInUrl"), /database holds a password/);
  assert.match(failed("notPostgres"), /must be a postgres:\/\/ or postgresql:\/\/ URL/);
  assert.match(failed("passwordFileAlone"), /databasePasswordFile is set but database is not/);
  assert.match(failed("passwordFileInStore"), /must not be in the Nix store/);
  assert.match(failed("adminTokenInStore"), /must not be in the Nix store/);
  assert.match(failed("databaseInSettings"), /settings must not set .*database/);
});

test("controller: systemd unit and defaults", { skip }, () => {
  const s = evalScenario("controllerDefault");
  assert.deepEqual(s.failedAssertions, []);
  assert.equal(s.controller.dataDir, "/var/lib/ferry-controller");
  assert.equal(s.controller.listenAddress, "0.0.0.0:7070");
  assert.equal(s.controller.grpcListenAddress, "127.0.0.1:7071");
  assert.equal(s.controller.openFirewall, false);
  assert.deepEqual(s.firewallPorts, []);
  const unit = service(s, "ferry-controller");
  assert.match(
    String(unit.serviceConfig.ExecStart),
    /^\/nix\/store\/[^ ]+-ferry-[^/ ]+\/bin\/ferry controller --data-dir \/var\/lib\/ferry-controller --listen 0\.0\.0\.0:7070 --grpc-listen 127\.0\.0\.1:7071$/,
  );
  const sc = unit.serviceConfig;
  assert.equal(sc.DynamicUser, true);
  assert.equal(sc.StateDirectory, "ferry-controller");
  assert.equal(sc.StateDirectoryMode, "0700");
  assert.equal(sc.WorkingDirectory, "/var/lib/ferry-controller");
  assert.equal(sc.User, undefined, "a dynamic user by default");
  assert.equal(sc.ReadWritePaths, undefined, "StateDirectory is writable under ProtectSystem=strict by itself");
  assert.deepEqual(s.users, {}, "no system user by default");
  assert.deepEqual(s.tmpfiles, {}, "systemd creates the StateDirectory");
  assert.equal(sc.ProtectSystem, "strict");
  assert.equal(sc.ProtectHome, true);
  assert.equal(sc.PrivateTmp, true);
  assert.equal(sc.NoNewPrivileges, true);
  assert.equal(sc.CapabilityBoundingSet, "");
  assert.deepEqual(sc.AmbientCapabilities, []);
  assert.deepEqual(sc.RestrictAddressFamilies, ["AF_INET", "AF_INET6", "AF_UNIX"]);
  assert.ok((sc.SystemCallFilter as string[]).includes("@system-service"));
  assert.equal(sc.MemoryDenyWriteExecute, undefined, "V8 needs W+X memory");
  assert.deepEqual(unit.wantedBy, ["multi-user.target"]);
});

test("controller: cacheGc schedules ferry cache gc; off by default; a malformed duration is refused", { skip }, () => {
  const s = evalScenario("controllerCacheGc");
  assert.deepEqual(s.failedAssertions, []);
  assert.match(
    String(service(s, "ferry-controller").serviceConfig.ExecStart),
    / --grpc-listen 127\.0\.0\.1:7071 --cache-gc-every 1d --cache-gc-min-age 30d --cache-gc-keep-bundles 5$/,
  );
  assert.doesNotMatch(String(service(evalScenario("controllerDefault"), "ferry-controller").serviceConfig.ExecStart), /cache-gc/);
  const bad = evalScenario("controllerCacheGcBad");
  assert.match(bad.failedAssertions.join("\n"), /cacheGc\.every and cacheGc\.minAge are durations such as "1d".*got every = "daily"/s);
});

test("controller: cacheDir (a shared directory) and cacheUrl (an external cache) become flags; the fixed user may write the directory", { skip }, () => {
  const s = evalScenario("controllerSharedCache");
  assert.deepEqual(s.failedAssertions, []);
  const unit = service(s, "ferry-controller");
  assert.match(String(unit.serviceConfig.ExecStart), / --cache-dir \/mnt\/ferry-cache --cache-url https:\/\/cache\.example\.net$/);
  assert.equal(unit.serviceConfig.User, "ferry-controller");
  assert.equal(unit.serviceConfig.DynamicUser, undefined);
  assert.deepEqual(unit.serviceConfig.ReadWritePaths, ["/var/lib/ferry-controller", "/mnt/ferry-cache"]);
  assert.doesNotMatch(String(service(evalScenario("controllerDefault"), "ferry-controller").serviceConfig.ExecStart), /cache-dir|cache-url/);
  const bad = evalScenario("controllerSharedCacheBad");
  assert.match(bad.failedAssertions.join("\n"), /cacheDir must be an absolute path .*got "\/mnt\/ferry cache"/s);
});

test("controller: firewall, privileged port and extra flags", { skip }, () => {
  const s = evalScenario("controllerOpen");
  assert.deepEqual(s.failedAssertions, []);
  assert.deepEqual(s.firewallPorts, [443], "only the listen port is opened, not the gRPC one");
  const sc = service(s, "ferry-controller").serviceConfig;
  assert.match(
    String(sc.ExecStart),
    / controller --data-dir \/var\/lib\/ferry-controller --listen '\[::\]:443' --grpc-listen 0\.0\.0\.0:7071 --allow-host a --allow-host b --log-level debug --public-url https:\/\/ferry\.example\.net --verbose$/,
  );
  assert.deepEqual(sc.AmbientCapabilities, ["CAP_NET_BIND_SERVICE"]);
  assert.deepEqual(sc.CapabilityBoundingSet, ["CAP_NET_BIND_SERVICE"]);
});

test("controller: assertions", { skip }, () => {
  const { failedAssertions } = evalScenario("controllerBad");
  assert.equal(failedAssertions.length, 2, failedAssertions.join("\n"));
  assert.match(failedAssertions[0] ?? "", /listenAddress must be HOST:PORT.*got "7070"/);
  assert.match(failedAssertions[1] ?? "", /settings must not set dataDir, listen, grpcListen/);
  assert.match(failedAssertions[1] ?? "", /use services\.ferry-controller\.dataDir/);
});

test("controller: dataDir elsewhere under /var/lib stays a DynamicUser StateDirectory", { skip }, () => {
  const s = evalScenario("controllerVarLibDir");
  assert.deepEqual(s.failedAssertions, []);
  const unit = service(s, "ferry-controller");
  const sc = unit.serviceConfig;
  assert.match(String(sc.ExecStart), / controller --data-dir \/var\/lib\/ferry\/state --listen /);
  assert.equal(sc.DynamicUser, true);
  assert.equal(sc.StateDirectory, "ferry/state", "StateDirectory is relative to /var/lib");
  assert.equal(sc.WorkingDirectory, "/var/lib/ferry/state");
  assert.equal(sc.ReadWritePaths, undefined);
  assert.deepEqual(s.users, {});
  assert.deepEqual(s.tmpfiles, {});
});

test("controller: dataDir outside /var/lib gets a system user, tmpfiles and write access", { skip }, () => {
  const s = evalScenario("controllerCustomDir");
  assert.deepEqual(s.failedAssertions, []);
  const unit = service(s, "ferry-controller");
  const sc = unit.serviceConfig;
  assert.match(String(sc.ExecStart), / controller --data-dir \/srv\/ferry --listen /);
  // A dynamic UID is allocated at start: nothing outside the unit could own
  // /srv/ferry for it, and files from a previous UID would become unreadable.
  assert.equal(sc.DynamicUser, undefined);
  assert.equal(sc.StateDirectory, undefined, "StateDirectory only names folders under /var/lib");
  assert.equal(sc.User, "ferry-controller");
  assert.equal(sc.Group, "ferry-controller");
  assert.deepEqual(sc.ReadWritePaths, ["/srv/ferry"], "ProtectSystem=strict makes everything else read-only");
  assert.equal(sc.ProtectSystem, "strict");
  assert.equal(sc.WorkingDirectory, "/srv/ferry");
  assert.deepEqual(unit.unitConfig?.RequiresMountsFor, ["/srv/ferry"]);
  assert.deepEqual(s.users, {
    "ferry-controller": { isSystemUser: true, group: "ferry-controller", home: "/srv/ferry", description: "Ferry controller" },
  });
  assert.deepEqual(s.groups, { "ferry-controller": {} });
  assert.deepEqual(s.tmpfiles, {
    "ferry-controller": { "/srv/ferry": { d: { user: "ferry-controller", group: "ferry-controller", mode: "0700" } } },
  });
});

test("controller: nginx.enable serves the cache directory read-only on its own port, the controller keeps the rest", { skip }, () => {
  const s = evalScenario("controllerNginx");
  assert.deepEqual(s.failedAssertions, []);
  assert.deepEqual(s.firewallPorts, [7070, 7080], "both HTTP ports, never gRPC");
  const unit = service(s, "ferry-controller");
  assert.match(
    String(unit.serviceConfig.ExecStart),
    / controller --data-dir \/var\/lib\/ferry-controller --listen 0\.0\.0\.0:7070 /,
    "uploads and agents stay on the controller",
  );
  // nginx cannot pass /var/lib/private, where a DynamicUser's state lives.
  assert.equal(unit.serviceConfig.DynamicUser, undefined);
  assert.equal(unit.serviceConfig.User, "ferry-controller");
  assert.deepEqual(unit.serviceConfig.ReadWritePaths, ["/var/lib/ferry-controller"]);
  assert.deepEqual(s.tmpfiles, {
    "ferry-controller": {
      "/var/lib/ferry-controller": {
        d: { user: "ferry-controller", group: "ferry-controller", mode: "0700" },
        "a+": { argument: "group:nginx:--x" },
      },
    },
    "ferry-controller-nginx": {
      "/var/lib/ferry-controller/cache": {
        d: { user: "ferry-controller", group: "ferry-controller", mode: "0700" },
        "A+": { argument: "group:nginx:r-X,default:group:nginx:r-X" },
      },
    },
  });
  assert.equal(s.nginx.enable, true);
  const vhost = s.nginx.virtualHosts?.["ferry-cache"];
  assert.ok(vhost, JSON.stringify(s.nginx));
  assert.deepEqual(vhost.listen, [{ addr: "0.0.0.0", port: 7080 }]);
  const info = vhost.locations["= /cache/nix-cache-info"];
  assert.ok(info?.alias && readFileSync(info.alias, "utf8") === "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n");
  const files = Object.entries(vhost.locations).find(([path]) => path.startsWith("~ "));
  assert.ok(files, "a location for the cache's file names");
  // nginx needs the regex quoted, or it reads its "{" as the start of the block.
  assert.match(files[0], /^~ ".*"$/);
  const pattern = new RegExp(files[0].slice(3, -1));
  for (const ok of ["/cache/pz5wv3mkbf4bwihvsz8yqydfwb9bfhy5.narinfo", `/cache/nar/${"a".repeat(52)}.nar.zst`, `/cache/nar/${"a".repeat(52)}.nar`])
    assert.match(ok, pattern);
  for (const bad of ["/cache/.upload-1", "/cache/.bundle-x/nar/a.nar", "/cache/../state.sqlite", "/cache/nar/short.nar", "/cache/x.narinfo"])
    assert.doesNotMatch(bad, pattern);
  assert.equal(files[1].alias, "/var/lib/ferry-controller/cache/$1");
  assert.match(files[1].extraConfig ?? "", /limit_except GET \{ deny all; \}/);
  assert.equal(vhost.locations["/cache/"]?.return, "404", "nothing else under /cache/");
});

test("controller: nginx on the controller's own port is refused", { skip }, () => {
  const { failedAssertions } = evalScenario("controllerNginxSamePort");
  assert.equal(failedAssertions.length, 1, failedAssertions.join("\n"));
  assert.match(failedAssertions[0] ?? "", /nginx\.listenAddress must be HOST:PORT on another port than listenAddress.*got "\[::\]:7070"/s);
});

test("controller: unsupported dataDir values are refused with the reason", { skip }, async (t) => {
  const scenarios = evalScenario<Record<string, Scenario>>("controllerBadDataDir");
  const malformed = /dataDir must be an absolute path without "\." or "\.\." components/;
  const hidden = /dataDir must not be under \/tmp, \/var\/tmp, \/home, \/root, \/run\/user, \/var\/lib\/private/;
  const cases: [scenario: string, patterns: RegExp[]][] = [
    ["relative", [malformed, /got "var\/lib\/ferry"/]],
    ["trailingSlash", [malformed, /got "\/srv\/ferry\/"/]],
    ["dotDot", [malformed, /got "\/srv\/ferry\/\.\.\/etc"/]],
    ["space", [malformed, /got "\/srv\/my ferry"/]],
    ["specifier", [malformed, /got "\/srv\/ferry-%i"/]],
    ["store", [/dataDir is in the Nix store, which is read-only/, /\/srv\/ferry/]],
    ["tmp", [hidden, /PrivateTmp/, /got "\/tmp\/ferry"/]],
    ["home", [hidden, /ProtectHome/, /got "\/home\/ops\/ferry"/]],
    ["dynamicUserPrivate", [hidden, /DynamicUser/, /got "\/var\/lib\/private\/ferry"/]],
    ["shared", [/dataDir is "\/srv", a directory other software shares/, /such as \/srv\/ferry/]],
  ];
  assert.deepEqual(Object.keys(scenarios).sort(), cases.map(([name]) => name).sort());
  for (const [scenario, patterns] of cases) {
    await t.test(scenario, () => {
      const failed = scenarios[scenario]?.failedAssertions ?? [];
      assert.equal(failed.length, 1, `expected one failed assertion, got: ${failed.join("\n")}`);
      for (const pattern of patterns) assert.match(failed[0] ?? "", pattern);
    });
  }
});

test("package.nix: buildNpmPackage arguments", { skip }, (t) => {
  const p = evalScenario<PackageScenario>("package");
  assert.equal(p.pname, "ferry");
  assert.equal(p.mainProgram, "ferry");
  assert.equal(p.npmBuildScript, "build");
  assert.match(p.installPhase, /makeWrapper \S+\/bin\/node "\$out\/bin\/ferry"/);
  assert.match(p.installPhase, /packages\/cli\/dist\/main\.js/);
  // node_modules/.bin/ferry links to packages/cli/bin/ferry.js: without bin/
  // in the output that link would dangle (nixpkgs fails on broken symlinks).
  assert.match(p.installPhase, /for sub in bin dist node_modules; do/);
  if (!p.sourceEvaluable) {
    t.diagnostic("source whitelist not checked: lib.fileset needs Nix >= 2.14 (builtins.readFileType)");
    return;
  }
  assert.deepEqual(p.srcTop, [".npmrc", "package-lock.json", "package.json", "packages", "proto", "tsconfig.json"]);
  assert.ok(p.srcCli?.includes("package.json"));
  assert.ok(p.srcCli?.includes("bin"));
  assert.ok(!p.srcCli?.includes("dist"));
});

test("package.nix: dependencies come from importNpmLock, no hash to maintain", { skip }, () => {
  const p = evalScenario<PackageScenario>("package");
  assert.equal(p.hasNpmDepsHash, false, "npmDepsHash would make buildNpmPackage fetch with fetchNpmDeps");
  assert.equal(p.npmConfigHookIsImportNpmLocks, true, "npmHooks.npmConfigHook cannot install importNpmLock's file: dependencies");
  assert.equal(p.importNpmLock.hasNpmRoot, true);
  assert.equal(p.importNpmLock.version, p.version);
  assert.deepEqual(p.importNpmLock.package, JSON.parse(readFileSync(join(root, "package.json"), "utf8")));

  const lock = JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8")) as PackageLock;
  const passed = p.importNpmLock.packageLock;
  const links = Object.keys(lock.packages).filter((key) => lock.packages[key]?.link === true);
  assert.ok(links.length > 0, "the lock has workspace links");
  // Everything but the workspace links goes through unchanged...
  assert.deepEqual({ ...passed, packages: {} }, { ...lock, packages: {} });
  assert.deepEqual(passed.packages, Object.fromEntries(Object.entries(lock.packages).filter(([key]) => !links.includes(key))));
  // ...so that npm links node_modules/@ferry/* to the packages/* folders the
  // build compiles, as the root package.json's workspaces say.
  const workspaces = (p.importNpmLock.package.workspaces as string[]).slice().sort();
  assert.deepEqual(links.map((key) => lock.packages[key]?.resolved).sort(), workspaces);
});

test("package.nix: only better-sqlite3's install script runs, built from source", { skip }, () => {
  const p = evalScenario<PackageScenario>("package");
  assert.deepEqual(p.npmRebuildFlags, ["better-sqlite3"]);
  assert.equal(p.env.npm_config_build_from_source, "true", "prebuild-install would try to download a binary");
  assert.ok(p.nativeBuildInputs.includes("python3"), "node-gyp needs python3");
});

test("flake.nix: packages, overlay and modules without a hash", { skip }, () => {
  const f = evalScenario<FlakeScenario>("flake");
  for (const system of ["x86_64-linux", "aarch64-linux"]) {
    assert.deepEqual(f.packages[system], { default: "ferry-0.1.0", ferry: "ferry-0.1.0" }, system);
    assert.equal(f.sameDefault[system], true, `${system}: packages.default is packages.ferry`);
    assert.equal(f.hasNpmDepsHash[system], false, system);
  }
  assert.equal(f.mainProgram, "ferry", "nix run .#ferry runs meta.mainProgram");
  assert.equal(f.overlayPackage, "ferry-0.1.0");
  assert.deepEqual(f.nixosModules, ["agent", "controller", "default"]);
  assert.deepEqual(f.moduleFiles, { agent: true, controller: true, default: true });
});

test("example fleet: configuration.nix per environment", { skip }, async (t) => {
  const fleet = evalScenario<Record<string, Scenario>>("fleet");
  for (const [environment, confirmTimeout] of [
    ["staging", 120],
    ["production", 300],
  ] as const) {
    await t.test(environment, () => {
      const s = fleet[environment];
      assert.ok(s);
      assert.deepEqual(s.failedAssertions, []);
      const settings = s.agent.settings;
      assert.equal(settings.confirmTimeout, confirmTimeout);
      // The example fleet takes only what CI signed: a controller alone can choose nothing.
      assert.equal(settings.requireSignedIntents, true);
      assert.deepEqual(settings.intentPublicKeys, ["ferry-fleet-intents-1:ZXhhbXBsZS1pbnRlbnQta2V5LXJlcGxhY2UtaXQtISE="]);
      assert.deepEqual(settings.healthChecks, [
        { type: "systemd", units: ["hello.service"], strict: false },
        {
          type: "http",
          url: "http://127.0.0.1:8080/healthz",
          expectStatus: 200,
          bodyContains: "ok",
          timeout: 5,
          strict: false,
        },
      ]);
      const hello = service(s, "hello");
      assert.equal(hello.environment?.FLEET_ENVIRONMENT, environment);
      assert.match(String(hello.serviceConfig.ExecStart), /-hello-service\/bin\/hello-service$/);
    });
  }
});

// The agent validates its configuration against one schema (unknown keys
// rejected); every configuration the module renders must pass it. Needs the
// workspaces built (`npm run build`), skipped otherwise.
test("agent: rendered configurations pass the agent schema", { skip }, async (t) => {
  const specifier = "@ferry/agent";
  let parseAgentConfig: (raw: unknown) => unknown;
  let restartStatus: number;
  try {
    ({ parseAgentConfig, RESTART_EXIT_STATUS: restartStatus } = (await import(specifier)) as {
      parseAgentConfig: (raw: unknown) => unknown;
      RESTART_EXIT_STATUS: number;
    });
  } catch (error) {
    t.skip(`@ferry/agent is not built (run npm run build): ${(error as Error).message.split("\n")[0]}`);
    return;
  }
  const fleet = evalScenario<Record<string, Scenario>>("fleet");
  const configs: [string, Record<string, unknown>][] = [
    ["agentDefault", agentConfigFile(evalScenario("agentDefault"))],
    ["agentFull", agentConfigFile(evalScenario("agentFull"))],
    ["agentTls", agentConfigFile(evalScenario("agentTls"))],
    ["agentInsecureAllowed", agentConfigFile(evalScenario("agentInsecureAllowed"))],
    ["agentIntents", agentConfigFile(evalScenario("agentIntents"))],
    ["agentReplicas", agentConfigFile(evalScenario("agentReplicas"))],
    ["agentStandalone", JSON.parse(readFileSync(evalScenario("agentStandalone").etc["ferry/agent.json"] ?? "", "utf8")) as Record<string, unknown>],
    ...Object.entries(fleet).map(([env, s]): [string, Record<string, unknown>] => [`fleet ${env}`, agentConfigFile(s)]),
  ];
  for (const [name, config] of configs) {
    assert.doesNotThrow(() => parseAgentConfig(config), `${name} config rejected by the agent`);
  }
  // The module's assertion and the agent refuse the same checks, by the same index.
  assert.throws(
    () => parseAgentConfig(agentConfigFile(evalScenario("agentUnrunnableChecks"))),
    /healthChecks\[0\] \(systemd:.*--host=evil.*healthChecks\[2\] \(http:http:\/\/local host.*healthChecks\[4\] \(command:sh -c true\)/s,
  );
  assert.equal(
    service(evalScenario("agentDefault"), "ferry-agent").serviceConfig.RestartForceExitStatus,
    restartStatus,
    "the unit restarts on the agent's status",
  );
});

import { resolve } from "node:path";
import { setLogger } from "@grpc/grpc-js";
import { FerryError, createLogger, parseHostPort, toFerryError } from "@ferry/core";
import { startController, type ControllerTlsFiles } from "@ferry/controller";
import { parseVerb, positiveSeconds, requireString } from "../args.js";
import { parseCount, parseDuration } from "../units.js";
import { VERBS } from "../spec/index.js";
import { waitForSignal } from "../signals.js";
import { readEnv } from "../spec/env.js";

export async function controllerCommand(args: string[]): Promise<number> {
  const { values } = parseVerb(VERBS.controller, args);
  const tls = tlsFiles(values);
  // With --json, stdout carries only the (error) document; the log goes to stderr.
  const log = createLogger("controller", {
    ...(values["log-level"] === undefined ? {} : { level: values["log-level"] }),
    ...(values.json ? { destination: 2 } : {}),
  });
  // grpc-js would print its own "E …" lines on stderr; they become log events like the rest.
  const grpcLog = log.child({ part: "grpc" });
  setLogger({ error: (...parts: unknown[]) => grpcLog.warn(parts.join(" ")), info: (...parts: unknown[]) => grpcLog.debug(parts.join(" ")) });
  const controller = await startController({
    dataDir: requireString(values["data-dir"], "--data-dir"),
    ...databaseOption(values.database ?? readEnv("FERRY_DATABASE_URL")),
    listen: parseHostPort(values.listen, "--listen"),
    grpcListen: parseHostPort(values["grpc-listen"], "--grpc-listen"),
    ...(values["public-url"] ? { publicUrl: values["public-url"] } : {}),
    ...(values["cache-dir"] ? { cacheDir: resolve(values["cache-dir"]) } : {}),
    ...(values["cache-url"] ? { cacheUrl: values["cache-url"] } : {}),
    heartbeatIntervalMs: positiveSeconds(values["heartbeat-interval"], "--heartbeat-interval") * 1000,
    ...(tls ? { tls } : {}),
    privateCache: values["private-cache"],
    metricsPublic: values["metrics-public"],
    cacheGc: {
      minAgeMs: parseDuration(values["cache-gc-min-age"], "--cache-gc-min-age"),
      keepBundles: parseCount(values["cache-gc-keep-bundles"], "--cache-gc-keep-bundles"),
      ...(values["cache-gc-every"] === undefined ? {} : { everyMs: parseDuration(values["cache-gc-every"], "--cache-gc-every") }),
    },
    log,
  });
  // SIGHUP re-reads the certificates (certbot/ACME renewals, systemctl reload); open connections stay up.
  const reload = (): void => {
    if (!controller.tls) return void log.warn("SIGHUP ignored: the controller runs without TLS");
    try {
      controller.reloadTls();
    } catch (error) {
      const failure = toFerryError(error, "E_TLS_MATERIAL");
      log.error({ code: failure.code, err: failure.message }, "TLS reload failed; the previous certificates stay in use");
    }
  };
  process.on("SIGHUP", reload);
  await waitForSignal();
  process.off("SIGHUP", reload);
  await controller.stop();
  return 0;
}

function databaseOption(url: string | undefined): { database?: string } {
  if (url === undefined || url === "") return {};
  if (!/^postgres(ql)?:\/\//.test(url)) {
    throw new FerryError(
      "E_BAD_ARGUMENT",
      `--database must be a postgres:// or postgresql:// URL (SQLite needs none: it is DATA_DIR/state.sqlite); got ${JSON.stringify(url.slice(0, 60))}`,
    );
  }
  return { database: url };
}

function tlsFiles(values: { "tls-cert"?: string; "tls-key"?: string; "client-ca"?: string; "agent-client-ca"?: string }): ControllerTlsFiles | undefined {
  const { "tls-cert": certFile, "tls-key": keyFile, "client-ca": clientCaFile, "agent-client-ca": agentClientCaFile } = values;
  if (!certFile && !keyFile) {
    if (clientCaFile || agentClientCaFile) throw new FerryError("E_BAD_ARGUMENT", "--client-ca and --agent-client-ca need TLS: give --tls-cert and --tls-key");
    return undefined;
  }
  if (!certFile || !keyFile) throw new FerryError("E_BAD_ARGUMENT", "--tls-cert and --tls-key go together: give both");
  return { certFile, keyFile, ...(clientCaFile ? { clientCaFile } : {}), ...(agentClientCaFile ? { agentClientCaFile } : {}) };
}

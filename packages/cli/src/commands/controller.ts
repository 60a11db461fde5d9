import { setLogger } from "@grpc/grpc-js";
import { createLogger, parseHostPort } from "@ferry/core";
import { startController } from "@ferry/controller";
import { parseVerb, positiveSeconds, requireString } from "../args.js";
import { VERBS } from "../spec/index.js";

export async function controllerCommand(args: string[]): Promise<number> {
  const { values } = parseVerb(VERBS.controller, args);
  const log = createLogger("controller", values["log-level"] === undefined ? {} : { level: values["log-level"] });
  // grpc-js would print its own "E …" lines on stderr; they become log events like the rest.
  const grpcLog = log.child({ part: "grpc" });
  setLogger({ error: (...parts: unknown[]) => grpcLog.warn(parts.join(" ")), info: (...parts: unknown[]) => grpcLog.debug(parts.join(" ")) });
  const controller = await startController({
    dataDir: requireString(values["data-dir"], "--data-dir"),
    listen: parseHostPort(values.listen, "--listen"),
    grpcListen: parseHostPort(values["grpc-listen"], "--grpc-listen"),
    ...(values["public-url"] ? { publicUrl: values["public-url"] } : {}),
    heartbeatIntervalMs: positiveSeconds(values["heartbeat-interval"], "--heartbeat-interval") * 1000,
    log,
  });
  await waitForSignal();
  await controller.stop();
  return 0;
}

export function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    const done = () => resolve();
    process.once("SIGINT", done);
    process.once("SIGTERM", done);
  });
}

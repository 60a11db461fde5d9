import { createLogger, parseHostPort } from "@ferry/core";
import { startController } from "@ferry/controller";
import { parse, positiveSeconds, requireString } from "../args.js";

export async function controllerCommand(args: string[]): Promise<number> {
  const { values } = parse(
    args,
    {
      "data-dir": { type: "string" },
      listen: { type: "string", default: "0.0.0.0:7070" },
      "grpc-listen": { type: "string", default: "127.0.0.1:7071" },
      "public-url": { type: "string" },
      "heartbeat-interval": { type: "string" },
      "log-level": { type: "string" },
    },
    false,
  );
  const log = createLogger("controller", values["log-level"] === undefined ? {} : { level: values["log-level"] });
  const controller = await startController({
    dataDir: requireString(values["data-dir"], "--data-dir"),
    listen: parseHostPort(values.listen, "--listen"),
    grpcListen: parseHostPort(values["grpc-listen"], "--grpc-listen"),
    ...(values["public-url"] ? { publicUrl: values["public-url"] } : {}),
    heartbeatIntervalMs: positiveSeconds(values["heartbeat-interval"], "--heartbeat-interval", 10) * 1000,
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

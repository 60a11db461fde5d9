// Shared by the controller tests: a real controller on loopback, port 0, in a
// temp data dir that is removed on stop.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "@ferry/core";
import { startController, type ControllerOptions, type RunningController } from "@ferry/controller";

export interface TestController {
  controller: RunningController;
  dataDir: string;
  /** Operator token, as written to DATA_DIR/admin.token. */
  adminToken: string;
  baseUrl: string;
  stop(): Promise<void>;
}

export async function startTestController(
  options: Pick<
    Partial<ControllerOptions>,
    "heartbeatIntervalMs" | "edgeLimits" | "agentFrameRate" | "history" | "log" | "metricsPublic" | "hostLogLimits" | "dashboard"
  > = {},
): Promise<TestController> {
  const dataDir = mkdtempSync(join(tmpdir(), "ferry-controller-"));
  const controller = await startController({
    dataDir,
    listen: { host: "127.0.0.1", port: 0 },
    grpcListen: { host: "127.0.0.1", port: 0 },
    log: silentLogger(),
    ...options,
  });
  let stopped = false;
  return {
    controller,
    dataDir,
    adminToken: readFileSync(join(dataDir, "admin.token"), "utf8").trim(),
    baseUrl: `http://127.0.0.1:${controller.httpPort}`,
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        await controller.stop();
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
  };
}

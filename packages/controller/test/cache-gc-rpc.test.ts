// CollectCacheGarbage over gRPC: out-of-range input is refused with
// E_BAD_ARGUMENT and deletes nothing; a flood of calls is served one
// collection at a time, each answering.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Metadata, credentials, type ServiceError } from "@grpc/grpc-js";
import { OperatorServiceClient, type CollectCacheGarbageRequest, type CollectCacheGarbageResponse } from "@ferry/protocol";
import { startTestController, type TestController } from "./controller-fixture.js";

let t: TestController;
let client: OperatorServiceClient;
before(async () => {
  t = await startTestController();
  client = new OperatorServiceClient(`127.0.0.1:${t.controller.grpcPort}`, credentials.createInsecure());
});
after(async () => {
  client?.close();
  await t.stop();
});

function collect(request: Partial<CollectCacheGarbageRequest>): Promise<CollectCacheGarbageResponse> {
  const metadata = new Metadata();
  metadata.set("authorization", `Bearer ${t.adminToken}`);
  return new Promise((resolve, reject) =>
    client.collectCacheGarbage({ dryRun: false, ...request }, metadata, (error: ServiceError | null, response: CollectCacheGarbageResponse) =>
      error ? reject(error) : resolve(response),
    ),
  );
}

describe("CollectCacheGarbage", () => {
  test("out-of-range ages and bundle counts are refused (E_BAD_ARGUMENT)", async () => {
    for (const request of [{ minAgeSeconds: Number.MAX_SAFE_INTEGER }, { minAgeSeconds: 10 * 365 * 86_400 + 1 }, { keepBundles: 4_294_967_295 }]) {
      await assert.rejects(collect(request), (error: ServiceError) => {
        assert.equal(error.metadata.get("ferry-error-code")[0], "E_BAD_ARGUMENT", JSON.stringify(request));
        return true;
      });
    }
  });

  test("unset fields take the controller's defaults (7 days)", async () => {
    const report = await collect({ dryRun: true });
    assert.equal(report.minAgeSeconds, 7 * 86_400);
    assert.equal(report.dryRun, true);
  });

  test("50 calls at once all answer", async () => {
    const reports = await Promise.all(Array.from({ length: 50 }, (_, i) => collect({ dryRun: i % 2 === 0, minAgeSeconds: 0 })));
    assert.equal(reports.length, 50);
    assert.ok(reports.every((report) => report.deletedCount === 0));
  });
});

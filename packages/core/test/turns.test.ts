import { test } from "node:test";
import assert from "node:assert/strict";
import { Turns } from "@ferry/core";

test("work runs one piece at a time, in order, and a failure does not stop what follows", async () => {
  const turns = new Turns();
  const log: string[] = [];
  let running = 0;
  const piece = (name: string, fail = false) =>
    turns.run(async () => {
      running += 1;
      assert.equal(running, 1, "never two at once");
      log.push(`start ${name}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
      log.push(`end ${name}`);
      running -= 1;
      if (fail) throw new Error(name);
      return name;
    });
  const results = await Promise.allSettled([piece("a"), piece("b", true), piece("c")]);
  assert.deepEqual(
    results.map((result) => result.status),
    ["fulfilled", "rejected", "fulfilled"],
  );
  assert.deepEqual(log, ["start a", "end a", "start b", "end b", "start c", "end c"]);
});

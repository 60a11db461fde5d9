// Tables at a terminal's width: cut, then thinned, never wider than asked.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { table } from "../src/output.js";

const HEADERS = ["HOST", "LINK", "PHASE", "CURRENT", "DESIRED", "LAST SEEN", "CHECKS", "AGENT", "LAST ERROR"];
const ROWS = [
  [
    "web-0001.eu-west.example.org",
    "offline",
    "failed",
    "abcdefgh…nixos-system-web-24.11",
    "ijklmnop…nixos-system-web-24.11",
    "3h ago",
    "2 failing",
    "0.9.0",
    "E_HEALTH_CHECK_FAILED: nginx.service failed its check after the switch",
  ],
  ["db-1", "online", "active", "qrstuvwx…nixos-system-db-24.11", "qrstuvwx…nixos-system-db-24.11", "4s ago", "ok", "0.9.0", "-"],
];
const FIT = { elastic: [8, 4, 3, 2, 0], optional: [7, 6, 3, 5, 4], least: { 0: 24 } };

describe("table", () => {
  for (const width of [40, 60, 80, 120, 200]) {
    test(`fits ${width} columns and keeps the host names' start and the error code's`, () => {
      const lines = table(HEADERS, ROWS, width, FIT).trimEnd().split("\n");
      for (const line of lines) assert.ok(line.length <= width || width < 60, `${line.length} > ${width}: ${line}`);
      // The host name keeps 24 characters however narrow: rows must stay tellable apart.
      assert.match(lines[1] ?? "", /^web-0001\.eu-west\.exampl/);
      if (width >= 60) assert.match(lines[1] ?? "", /E_HEALTH/);
    });
  }

  test("without a width (a pipe) nothing is cut or left out", () => {
    const text = table(HEADERS, ROWS);
    assert.ok(text.includes(ROWS[0]?.[8] ?? "?"));
    assert.ok(text.includes("AGENT"));
  });

  test("a wide terminal gets the whole table", () => {
    assert.equal(table(HEADERS, ROWS, 400, FIT), table(HEADERS, ROWS));
  });
});

// Shared by the metrics tests: reads a controller's /metrics into samples
// keyed by name and labels (labels sorted, so a key does not depend on the
// order prom-client prints them in).
import assert from "node:assert/strict";

export type Samples = Map<string, number>;

/** `name{a="1",b="2"}` with the labels sorted by name; just `name` without labels. */
export function sampleKey(name: string, labels: Record<string, string> = {}): string {
  const parts = Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([label, value]) => `${label}=${JSON.stringify(value)}`);
  return parts.length > 0 ? `${name}{${parts.join(",")}}` : name;
}

export function parseExposition(text: string): Samples {
  const samples: Samples = new Map();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(match, `not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[pair[1] as string] = JSON.parse(`"${pair[2]}"`) as string;
    samples.set(sampleKey(match[1] as string, labels), Number(match[3]));
  }
  return samples;
}

export async function scrape(baseUrl: string, token: string | undefined): Promise<Samples> {
  const response = await fetch(`${baseUrl}/metrics`, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });
  assert.equal(response.status, 200, `GET /metrics answered ${response.status}`);
  return parseExposition(await response.text());
}

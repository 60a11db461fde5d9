// RESULTS.md holds one section per benchmark: a bench replaces its own
// section (from its "## " heading to the next one) and leaves the others.
import { existsSync, readFileSync, writeFileSync } from "node:fs";

export function writeResultsSection(file: string, heading: string, body: string): void {
  const text = existsSync(file) ? readFileSync(file, "utf8") : "# Benchmark results\n";
  const section = `${heading}\n\n${body.trim()}\n`;
  const start = text.indexOf(`${heading}\n`);
  if (start < 0) {
    writeFileSync(file, `${text.trimEnd()}\n\n${section}`);
    return;
  }
  const next = text.indexOf("\n## ", start + heading.length);
  writeFileSync(file, `${text.slice(0, start)}${section}${next < 0 ? "" : text.slice(next)}`);
}

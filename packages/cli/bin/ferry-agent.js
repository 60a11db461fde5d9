#!/usr/bin/env -S node --lite-mode --no-expose-wasm
// The resident agent's launcher, as `ferry` is the CLI's (see ferry.js): the
// flag on the line above is the point of this program (src/agent-main.ts).
import { existsSync } from "node:fs";

const main = new URL("../dist/agent-main.js", import.meta.url);
if (!existsSync(main)) {
  process.stderr.write("ferry-agent: Ferry is not built yet; run `npm run build` (or `npm test` / `npm run demo`) in the repository first\n");
  process.exit(1);
}
await import(main.href);

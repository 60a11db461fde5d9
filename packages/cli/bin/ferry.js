#!/usr/bin/env node
// npm links a workspace's bin only when the file exists at install time, and
// dist/ is built after install: this committed entry point is what
// node_modules/.bin/ferry links to, so a fresh clone resolves `ferry` locally
// and `npx ferry` can never fall through to the npm registry.
import { existsSync } from "node:fs";

const main = new URL("../dist/main.js", import.meta.url);
if (!existsSync(main)) {
  process.stderr.write("ferry: the CLI is not built yet; run `npm run build` (or `npm test` / `npm run demo`) in the repository first\n");
  process.exit(1);
}
await import(main.href);

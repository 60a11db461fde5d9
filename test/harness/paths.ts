import { fileURLToPath } from "node:url";

/** The built CLI: end-to-end tests run exactly what users run. */
export const FERRY_BIN = fileURLToPath(new URL("../../packages/cli/dist/main.js", import.meta.url));

import { fileURLToPath } from "node:url";

/** The built CLI: end-to-end tests run exactly what users run. */
export const FERRY_BIN = fileURLToPath(new URL("../../packages/cli/dist/main.js", import.meta.url));

/** The resident agent's launcher (Node under --lite-mode, from its #! line), as the Nix package's wrapper runs it. */
export const FERRY_AGENT_BIN = fileURLToPath(new URL("../../packages/cli/bin/ferry-agent.js", import.meta.url));

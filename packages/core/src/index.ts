export * from "./errors.js";
export * from "./validate.js";
export * from "./atomic-file.js";
export * from "./tokens.js";
export * from "./logger.js";
export * from "./runner.js";
export * from "./nix.js";
export * from "./narinfo.js";
export const FERRY_VERSION = "0.1.0";

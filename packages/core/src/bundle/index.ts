export * from "./keys.js";
export * from "./tar.js";
export * from "./manifest.js";
export * from "./verify.js";
export * from "./write.js";
export * from "./create.js";
export * from "./inventory.js";
export * from "./ledger.js";

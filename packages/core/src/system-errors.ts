import { closeSync, openSync, readFileSync } from "node:fs";
import { FerryError } from "./errors.js";

/**
 * Failures of the operating system that ordinary mistakes cause (a wrong path,
 * a port taken, a module built for another Node) become coded errors naming
 * the file or address, instead of reaching the user as "this is a bug".
 */

type SystemError = Error & { code?: string; path?: string; syscall?: string; address?: string; port?: number };

/** System calls that create or change a file: a permission error there means "not writable". */
const WRITING = new Set(["mkdir", "mkdtemp", "rename", "unlink", "rmdir", "write", "chmod", "symlink", "link", "copyfile"]);

function systemCode(error: unknown): string | undefined {
  const code = (error as SystemError | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** Reads a text file; `what` says what the file is for ("operator token file"), so the error can name both. */
export function readTextFile(file: string, what: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    throw fileError(error, file, what);
  }
}

/** Fails early, naming the file, when it cannot be opened for reading (before a long command starts). */
export function assertReadable(file: string, what: string): void {
  try {
    closeSync(openSync(file, "r"));
  } catch (error) {
    throw fileError(error, file, what);
  }
}

/** The coded error for a file that could not be opened, read or written. */
export function fileError(error: unknown, file: string, what: string): FerryError {
  const options = { cause: error };
  const access = WRITING.has((error as SystemError | null)?.syscall ?? "") ? "writable" : "readable";
  switch (systemCode(error)) {
    case "ENOENT":
      return new FerryError("E_FILE_NOT_FOUND", `${what} ${file} does not exist`, options);
    case "ENOTDIR":
      return new FerryError("E_FILE_NOT_FOUND", `${what} ${file} does not exist (a part of its path is not a directory)`, options);
    case "EACCES":
    case "EPERM":
      return new FerryError("E_FILE_UNREADABLE", `${what} ${file} is not ${access} by this user (uid ${process.geteuid?.() ?? "?"})`, options);
    case "EISDIR":
      return new FerryError("E_FILE_UNREADABLE", `${what} ${file} is a directory, not a file`, options);
    default:
      return new FerryError("E_FILE_UNREADABLE", `cannot read ${what} ${file}: ${(error as Error).message}`, options);
  }
}

function formatAddress(address: { host: string; port: number }): string {
  return address.host.includes(":") ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

/**
 * The coded error for a listener that could not bind. gRPC reports its bind
 * failures as plain text ("No address added … EADDRINUSE …"), so the text is
 * read too.
 */
export function listenError(error: unknown, address: { host: string; port: number }, what: string): FerryError {
  const text = `${systemCode(error) ?? ""} ${(error as Error)?.message ?? String(error)}`;
  const where = formatAddress(address);
  const options = { cause: error };
  if (text.includes("EADDRINUSE")) return new FerryError("E_ADDRESS_IN_USE", `${where} (${what}) is already in use by another process`, options);
  if (text.includes("EADDRNOTAVAIL")) return new FerryError("E_BAD_ARGUMENT", `${where} (${what}) is not an address of this machine`, options);
  if (text.includes("EACCES")) return new FerryError("E_BAD_ARGUMENT", `${where} (${what}): ports below 1024 need root or CAP_NET_BIND_SERVICE`, options);
  return new FerryError("E_INTERNAL", `cannot listen on ${where} (${what}): ${(error as Error)?.message ?? String(error)}`, options);
}

const NATIVE_FAILURE = /Could not locate the bindings file|NODE_MODULE_VERSION|invalid ELF header|wrong ELF class/;

/** `better-sqlite3` from a path such as …/node_modules/better-sqlite3/build/Release/better_sqlite3.node. */
function packageOf(text: string): string | undefined {
  const matches = [...text.matchAll(/node_modules[\\/]((?:@[^\\/\s]+[\\/])?[^\\/\s]+)[\\/]/g)];
  return matches.at(-1)?.[1]?.replace("\\", "/");
}

/** Recognises an unhandled error caused by the environment rather than by Ferry; undefined when it is not one. */
export function explainSystemError(error: unknown): FerryError | undefined {
  if (error instanceof FerryError || !(error instanceof Error)) return undefined;
  const system = error as SystemError;
  const code = systemCode(error);
  if (code === "ERR_DLOPEN_FAILED" || NATIVE_FAILURE.test(error.message)) {
    const name = packageOf(error.message) ?? "the native modules";
    const rebuild = name === "the native modules" ? "npm rebuild" : `npm rebuild ${name}`;
    const reason = error.message.startsWith("Could not locate the bindings file")
      ? "its compiled .node file is missing (never built?)"
      : (error.message.split("\n")[0] ?? "").slice(0, 300);
    return new FerryError(
      "E_NATIVE_MODULE",
      `native module ${name} cannot be loaded by Node.js ${process.version}: ${reason}; run \`${rebuild}\` (or \`npm ci\`) in the Ferry checkout`,
      { cause: error },
    );
  }
  if (code === "EADDRINUSE" && typeof system.port === "number") {
    return listenError(error, { host: system.address ?? "0.0.0.0", port: system.port }, "listener");
  }
  if (typeof system.path === "string" && ["ENOENT", "ENOTDIR", "EACCES", "EPERM", "EISDIR"].includes(code ?? "")) {
    return fileError(error, system.path, "file");
  }
  return undefined;
}

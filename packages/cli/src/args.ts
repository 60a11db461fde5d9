import { parseArgs, type ParseArgsConfig } from "node:util";

export type ParsedArgs<T extends Options> = ReturnType<typeof parseArgs<{ args: string[]; options: T; allowPositionals: boolean; strict: true }>>;
import { FerryError } from "@ferry/core";

export type Options = NonNullable<ParseArgsConfig["options"]>;

/** Flags every operator verb accepts. */
export const CONNECTION_OPTIONS = {
  controller: { type: "string" },
  "token-file": { type: "string" },
  ca: { type: "string" },
  "client-cert": { type: "string" },
  "client-key": { type: "string" },
  insecure: { type: "boolean", default: false },
  json: { type: "boolean", default: false },
} as const satisfies Options;

/** parseArgs, with its errors turned into E_BAD_ARGUMENT. */
export function parse<T extends Options>(args: string[], options: T, allowPositionals = true): ParsedArgs<T> {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true });
  } catch (error) {
    throw new FerryError("E_BAD_ARGUMENT", (error as Error).message);
  }
}

export function requireString(value: string | boolean | (string | boolean)[] | undefined, flag: string): string {
  if (typeof value !== "string" || value === "") throw new FerryError("E_BAD_ARGUMENT", `${flag} is required`);
  return value;
}

export function positiveSeconds(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const seconds = Number(value);
  if (!(seconds > 0)) throw new FerryError("E_BAD_ARGUMENT", `${flag} expects a positive number of seconds, got ${JSON.stringify(value)}`);
  return seconds;
}

import { FerryError } from "./errors.js";
import { assertStorePath } from "./validate.js";

export interface NarInfo {
  storePath: string;
  url: string;
  compression: string;
  narHash: string;
  narSize: number;
  fileSize: number | undefined;
  /** Full store paths this path refers to. */
  references: string[];
  deriver: string | undefined;
  sigs: string[];
}

/** Parses the "Key: value" text of a .narinfo file, strictly. */
export function parseNarInfo(text: string): NarInfo {
  const fields = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const colon = line.indexOf(": ");
    if (colon <= 0) throw new FerryError("E_BAD_ARGUMENT", `malformed narinfo line: ${JSON.stringify(line.slice(0, 200))}`);
    const key = line.slice(0, colon);
    const values = fields.get(key) ?? [];
    values.push(line.slice(colon + 2));
    fields.set(key, values);
  }
  const one = (key: string): string => {
    const value = fields.get(key)?.[0];
    if (value === undefined) throw new FerryError("E_BAD_ARGUMENT", `narinfo lacks ${key}`);
    return value;
  };
  const storePath = assertStorePath(one("StorePath"));
  const storeDir = "/nix/store/";
  const references = (fields.get("References")?.[0] ?? "")
    .split(" ")
    .filter(Boolean)
    .map((base) => assertStorePath(storeDir + base));
  const fileSize = fields.get("FileSize")?.[0];
  const size = (key: string, value: string): number => {
    // A size past 2^53 would be rounded silently and then trusted by the disk-space check.
    if (!/^\d{1,16}$/.test(value) || !Number.isSafeInteger(Number(value))) {
      throw new FerryError("E_BAD_ARGUMENT", `narinfo ${key} is not a size in bytes: ${JSON.stringify(value.slice(0, 40))}`);
    }
    return Number(value);
  };
  return {
    storePath,
    url: one("URL"),
    compression: fields.get("Compression")?.[0] ?? "bzip2",
    narHash: one("NarHash"),
    narSize: size("NarSize", one("NarSize")),
    fileSize: fileSize === undefined ? undefined : size("FileSize", fileSize),
    references,
    deriver: fields.get("Deriver")?.[0],
    sigs: fields.get("Sig") ?? [],
  };
}

import { FerryError } from "./errors.js";

export interface NetrcEntry {
  machine: string;
  login: string;
  password: string;
}

/**
 * A netrc file for Nix's `netrc-file` option. Fields are separated by
 * whitespace in that format, so a value holding any would silently
 * authenticate as someone else: such a value is refused instead.
 */
export function formatNetrc(entries: readonly NetrcEntry[]): string {
  return entries
    .map(({ machine, login, password }) => {
      for (const [name, value] of [
        ["machine", machine],
        ["login", login],
        ["password", password],
      ] as const) {
        if (value === "" || /\s/.test(value)) throw new FerryError("E_BAD_ARGUMENT", `netrc ${name} must be non-empty and hold no whitespace`);
      }
      return `machine ${machine} login ${login} password ${password}\n`;
    })
    .join("");
}

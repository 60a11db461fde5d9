import { readlinkSync } from "node:fs";
import { isStorePath } from "@ferry/core";

/** The store path a symlink (e.g. /run/current-system) points at, or "" when none. */
export function readSystemLink(link: string): string {
  try {
    const target = readlinkSync(link);
    return isStorePath(target) ? target : "";
  } catch {
    return "";
  }
}

/** Resolves a profile's generation link chain to the store path it selects. */
export function readProfile(profile: string): string {
  try {
    let target = readlinkSync(profile);
    if (!target.startsWith("/")) target = `${profile.slice(0, profile.lastIndexOf("/"))}/${target}`;
    return readSystemLink(target);
  } catch {
    return "";
  }
}

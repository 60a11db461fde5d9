// The processes of a cluster as /proc shows them, and the clean-up of
// clusters whose test process died before it could clean up.
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { clusterBaseDir } from "./postgres-install.js";

export function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone.
  }
}

/** Alive and not a zombie: a zombie holds no port, file or shared memory. */
export function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

export function childrenOf(parent: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === parent) children.push(Number(entry));
    } catch {
      // Exited while we looked.
    }
  }
  return children;
}

/**
 * Clusters of test processes that died without cleaning up (SIGKILL): their
 * postmaster died with them (pdeathsig), their directories are removed here.
 */
export function reapAbandoned(): void {
  let entries: string[];
  try {
    entries = readdirSync(clusterBaseDir());
  } catch {
    return;
  }
  for (const entry of entries) {
    if (!/^ferry-pg-[A-Za-z0-9]{6}$/.test(entry)) continue;
    const root = join(clusterBaseDir(), entry);
    let owner: number;
    try {
      owner = Number(readFileSync(join(root, "owner.pid"), "utf8"));
    } catch {
      continue;
    }
    if (!(owner > 0) || running(owner)) continue;
    const postmaster = postmasterPid(join(root, "data"));
    if (postmaster !== undefined && running(postmaster) && readCmdline(postmaster).includes("postgres")) {
      for (const backend of childrenOf(postmaster)) signal(backend, "SIGKILL");
      signal(postmaster, "SIGKILL");
    }
    rmSync(root, { recursive: true, force: true });
  }
}

function postmasterPid(dataDir: string): number | undefined {
  const file = join(dataDir, "postmaster.pid");
  if (!existsSync(file)) return undefined;
  try {
    const pid = Number(readFileSync(file, "utf8").split("\n")[0]);
    return pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function readCmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return "";
  }
}

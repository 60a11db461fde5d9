// Where PostgreSQL's programs are, which user runs them, and the one
// initialised data directory that every test cluster is copied from.
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { mustExec } from "./exec.js";

export const SKIP_HINT = "apt-get install postgresql, or run test/setup.sh as root";

/** The programs a cluster needs from the server's own bin directory (Debian's /usr/bin/psql is a wrapper that picks a version). */
const SERVER_PROGRAMS = ["initdb", "postgres", "pg_ctl", "pg_isready", "psql", "createdb"] as const;

export type PostgresFound = { binDir: string } | { skip: string };

function runningAsRoot(): boolean {
  return process.getuid?.() === 0;
}

function onPath(program: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir && existsSync(join(dir, program))) return join(dir, program);
  }
  return undefined;
}

function complete(binDir: string): boolean {
  return SERVER_PROGRAMS.every((program) => existsSync(join(binDir, program)));
}

/** The highest version first: /usr/lib/postgresql/16/bin before 15. */
function debianBinDirs(): string[] {
  const base = "/usr/lib/postgresql";
  let versions: string[];
  try {
    versions = readdirSync(base);
  } catch {
    return [];
  }
  return versions.sort((a, b) => Number.parseFloat(b) - Number.parseFloat(a)).map((version) => join(base, version, "bin"));
}

/**
 * Synchronous so that a test file can decide `skip` when it is loaded. Looks
 * at $FERRY_PG_BIN_DIR (only there, when it is set), then an initdb on PATH (Debian links only some
 * programs into /usr/local/bin, so the real directory is followed), then
 * /usr/lib/postgresql/<version>/bin.
 */
export function findPostgres(): PostgresFound {
  if (runningAsRoot() && !onPath("setpriv")) return { skip: "running as root needs setpriv (util-linux) to start PostgreSQL as an unprivileged user" };
  const chosen = process.env.FERRY_PG_BIN_DIR;
  if (chosen) return complete(chosen) ? { binDir: chosen } : { skip: `FERRY_PG_BIN_DIR=${chosen} lacks one of ${SERVER_PROGRAMS.join(", ")}` };
  const candidates: string[] = [];
  const initdb = onPath("initdb");
  if (initdb) candidates.push(dirname(realpathSync(initdb)));
  candidates.push(...debianBinDirs());
  const binDir = candidates.find(complete);
  if (binDir) return { binDir };
  return { skip: `initdb not found on PATH or in /usr/lib/postgresql/*/bin (${SKIP_HINT})` };
}

export interface ServerUser {
  uid: number;
  gid: number;
}

/** PostgreSQL refuses to run as root: then the `postgres` user runs it, or `nobody` where there is none. */
export function serverUser(): ServerUser | undefined {
  if (!runningAsRoot()) return undefined;
  const users = new Map<string, ServerUser>();
  for (const line of readFileSync("/etc/passwd", "utf8").split("\n")) {
    const [name, , uid, gid] = line.split(":");
    if (name && uid && gid) users.set(name, { uid: Number(uid), gid: Number(gid) });
  }
  return users.get("postgres") ?? users.get("nobody") ?? { uid: 65534, gid: 65534 };
}

/**
 * argv run as the server user. `--pdeathsig KILL` makes the kernel kill a
 * postmaster whose test process died without cleaning up (SIGKILL, a crash);
 * its backends then exit by themselves on postmaster death.
 */
export function asServer(user: ServerUser | undefined, argv: readonly string[], dieWithParent = false): string[] {
  const pdeath = dieWithParent && onPath("setpriv") ? ["--pdeathsig", "KILL"] : [];
  if (user) return ["setpriv", `--reuid=${user.uid}`, `--regid=${user.gid}`, "--init-groups", ...pdeath, ...argv];
  return pdeath.length > 0 ? ["setpriv", ...pdeath, ...argv] : [...argv];
}

/** No PG* variable of the caller's may point a server or client program elsewhere. */
export function serverEnv(): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? "/usr/bin:/bin", LC_ALL: "C", LANG: "C", TZ: "UTC" };
}

export function chownToServer(user: ServerUser | undefined, path: string): void {
  if (user) chownSync(path, user.uid, user.gid);
}

/**
 * Where clusters and the template live: os.tmpdir(), or $FERRY_PG_TMPDIR
 * (e.g. /dev/shm, where a cluster's thousand small files are created ten
 * times faster than on a slow disk).
 */
export function clusterBaseDir(): string {
  return process.env.FERRY_PG_TMPDIR || tmpdir();
}

/** A temporary directory the server user owns (mode 0700, from mkdtemp). */
export function serverTempDir(user: ServerUser | undefined, prefix: string): string {
  const dir = mkdtempSync(join(clusterBaseDir(), prefix));
  chownToServer(user, dir);
  return dir;
}

/** initdb's fixed choices: trust on loopback (a throw-away cluster), the role `ferry`, UTF-8 with the C locale. */
export async function initdb(binDir: string, user: ServerUser | undefined, dataDir: string): Promise<void> {
  await mustExec(asServer(user, [join(binDir, "initdb"), "-D", dataDir, "-A", "trust", "-U", "ferry", "--no-sync", "-E", "UTF8", "--locale=C"]), {
    env: serverEnv(),
    cwd: dirname(dataDir),
    timeoutMs: 120_000,
  });
}

/** Bump when initdb's arguments change, so that an old template on disk is not reused. */
const TEMPLATE_FORMAT = 1;
const templates = new Map<string, Promise<string>>();

/**
 * One initialised data directory per PostgreSQL version and server user, kept
 * under the temporary directory across test processes. It is built aside and
 * renamed into place, so a template that exists is complete; two processes
 * building it at once both succeed and one copy wins.
 */
export function templateDir(binDir: string, user: ServerUser | undefined): Promise<string> {
  const key = `${binDir}\0${clusterBaseDir()}`;
  let template = templates.get(key);
  if (!template) {
    template = buildTemplate(binDir, user);
    templates.set(key, template);
    template.catch(() => templates.delete(key));
  }
  return template;
}

async function buildTemplate(binDir: string, user: ServerUser | undefined): Promise<string> {
  const version = /\d+(\.\d+)?/.exec(await mustExec([join(binDir, "postgres"), "--version"], { env: serverEnv() }))?.[0] ?? "unknown";
  const uid = user?.uid ?? process.getuid?.() ?? 0;
  const dir = join(clusterBaseDir(), `ferry-pg-template-${version}-u${uid}-f${TEMPLATE_FORMAT}`);
  if (existsSync(join(dir, "PG_VERSION"))) return dir;
  const build = serverTempDir(user, "ferry-pg-template-build-");
  try {
    await initdb(binDir, user, join(build, "data"));
    try {
      renameSync(join(build, "data"), dir);
    } catch (error) {
      if (!existsSync(join(dir, "PG_VERSION"))) throw error;
    }
  } finally {
    rmSync(build, { recursive: true, force: true });
  }
  return dir;
}

/** `cp -a` keeps owner and mode (0700, which the server insists on). */
export async function copyTemplate(template: string, dataDir: string): Promise<void> {
  await mustExec(["cp", "-a", template, dataDir]);
}

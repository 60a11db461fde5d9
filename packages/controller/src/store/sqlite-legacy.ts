import type Database from "better-sqlite3";
import { FerryError } from "@ferry/core";
import { ActivationMode, HostPhase } from "@ferry/protocol";

/**
 * How the SQLite-only releases upgraded their files, one entry per
 * user_version. Kept so that any of their files opens: they run before the
 * shared migrations (sql-migrations.ts), whose first one they end at. Never
 * edit or add an entry: schema changes go to sql-migrations.ts.
 */
export const LEGACY_SQLITE_MIGRATIONS: readonly (string | ((db: Database.Database) => void))[] = [
  `CREATE TABLE hosts (
     name TEXT PRIMARY KEY,
     token_hash TEXT NOT NULL,
     tags TEXT NOT NULL DEFAULT '[]',
     created_at_ms INTEGER NOT NULL,
     desired_system TEXT NOT NULL DEFAULT '',
     desired_serial INTEGER NOT NULL DEFAULT 0,
     deployment_id TEXT NOT NULL DEFAULT '',
     activation_mode INTEGER NOT NULL DEFAULT ${ActivationMode.ACTIVATION_MODE_SWITCH},
     current_system TEXT NOT NULL DEFAULT '',
     phase INTEGER NOT NULL DEFAULT ${HostPhase.HOST_PHASE_IDLE},
     applied_serial INTEGER NOT NULL DEFAULT 0,
     last_seen_ms INTEGER NOT NULL DEFAULT 0,
     last_error_code TEXT NOT NULL DEFAULT '',
     last_error_message TEXT NOT NULL DEFAULT '',
     last_error_output TEXT NOT NULL DEFAULT '',
     agent_version TEXT NOT NULL DEFAULT ''
   );
   CREATE TABLE deployments (
     id TEXT PRIMARY KEY,
     created_at_ms INTEGER NOT NULL,
     targets TEXT NOT NULL
   );
   CREATE TABLE events (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     at_ms INTEGER NOT NULL,
     host_name TEXT NOT NULL,
     kind TEXT NOT NULL,
     data TEXT NOT NULL
   );
   CREATE INDEX events_by_host ON events (host_name, id);`,
  `
  ALTER TABLE hosts ADD COLUMN desired_activate INTEGER NOT NULL DEFAULT 1;
  ALTER TABLE hosts ADD COLUMN rollout_id TEXT NOT NULL DEFAULT '';
  CREATE TABLE rollouts (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    environment TEXT NOT NULL,
    manifest_digest TEXT NOT NULL,
    policy TEXT NOT NULL,
    wave_count INTEGER NOT NULL,
    current_wave INTEGER NOT NULL,
    reason TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    phase_started_at_ms INTEGER NOT NULL,
    resume_at_ms INTEGER NOT NULL
  );
  CREATE TABLE rollout_hosts (
    rollout_id TEXT NOT NULL REFERENCES rollouts (id),
    name TEXT NOT NULL,
    store_path TEXT NOT NULL,
    wave INTEGER NOT NULL,
    state TEXT NOT NULL,
    serial INTEGER NOT NULL,
    error_code TEXT NOT NULL,
    error_message TEXT NOT NULL,
    previous_system TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (rollout_id, name)
  );
  CREATE TABLE maintenance_windows (
    id TEXT PRIMARY KEY,
    host_name TEXT NOT NULL,
    tag TEXT NOT NULL,
    cron TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    timezone TEXT NOT NULL
  );`,
  // Mode 1 (switch) used to mean "the host's configured strategy"; that is now 0 (unspecified).
  `ALTER TABLE hosts ADD COLUMN held_for_window INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE rollouts ADD COLUMN mode INTEGER NOT NULL DEFAULT ${ActivationMode.ACTIVATION_MODE_UNSPECIFIED};
   UPDATE hosts SET activation_mode = ${ActivationMode.ACTIVATION_MODE_UNSPECIFIED} WHERE activation_mode = ${ActivationMode.ACTIVATION_MODE_SWITCH};`,
  // What ran before the current system: the cache keeps its closure (ferry cache rm).
  `ALTER TABLE hosts ADD COLUMN previous_system TEXT NOT NULL DEFAULT '';`,
  // Health checks that failed before and after the switch, from the host's last result.
  `ALTER TABLE hosts ADD COLUMN checks_failing TEXT NOT NULL DEFAULT '[]';
   ALTER TABLE hosts ADD COLUMN checks_run INTEGER NOT NULL DEFAULT 0;`,
  lowerCaseHostNames,
  // Named operator tokens with scopes, the audit trail, and who asked for each deployment.
  `
  CREATE TABLE operator_tokens (
    name TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]',
    environments TEXT NOT NULL DEFAULT '[]',
    created_at_ms INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL DEFAULT 0,
    revoked_at_ms INTEGER NOT NULL DEFAULT 0,
    rotated_at_ms INTEGER NOT NULL DEFAULT 0,
    builtin INTEGER NOT NULL DEFAULT 0
  );

  CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
  );
  CREATE INDEX audit_by_actor ON audit (actor, id);
  CREATE INDEX audit_by_time ON audit (at_ms);
   ALTER TABLE deployments ADD COLUMN requested_by TEXT NOT NULL DEFAULT '';`,
  // Signed deploy intents, relayed unchanged to the host ('' for none).
  `ALTER TABLE hosts ADD COLUMN desired_intent TEXT NOT NULL DEFAULT '';
   ALTER TABLE rollout_hosts ADD COLUMN intent TEXT NOT NULL DEFAULT '';`,
  // The engine looks for held deployments every second: without this it reads every host to find none.
  `CREATE INDEX hosts_held_for_window ON hosts (name) WHERE held_for_window = 1;`,
  // The bundle ledger, moved from bundles.json so that an import's ledger line and its deployment commit together.
  `
  CREATE TABLE bundle_imports (
    site TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL,
    imported_at_ms INTEGER NOT NULL,
    signer TEXT NOT NULL,
    hosts TEXT NOT NULL,
    PRIMARY KEY (site, sequence)
  );
  CREATE TABLE bundle_floor (id INTEGER PRIMARY KEY CHECK (id = 1), sequence INTEGER NOT NULL);`,
];

/**
 * Host names ignore case (assertHostName returns them in lower case), but
 * earlier versions stored them as typed. Two hosts differing only in case
 * cannot be merged without choosing whose token and history win, so the
 * controller refuses to start and says how to remove one. The unique index
 * keeps any later code path from storing such a pair again.
 */
function lowerCaseHostNames(db: Database.Database): void {
  const clashes = db.prepare("SELECT json_group_array(name) AS names FROM hosts GROUP BY lower(name) HAVING count(*) > 1").all() as { names: string }[];
  if (clashes.length > 0) {
    const groups = clashes.map((row) => (JSON.parse(row.names) as string[]).map((name) => JSON.stringify(name)).join(" and "));
    const example = (JSON.parse((clashes[0] as { names: string }).names) as string[])[0] as string;
    throw new FerryError(
      "E_HOST_CASE_CLASH",
      `hosts ${groups.join("; ")} differ only in letter case, and host names now ignore case; keep one of each: ` +
        `remove the others with the previous Ferry version (ferry host remove NAME) or with: sqlite3 ${db.name} "DELETE FROM hosts WHERE name = '${example}'"`,
    );
  }
  db.exec(`UPDATE hosts SET name = lower(name);
    UPDATE events SET host_name = lower(host_name);
    UPDATE OR IGNORE rollout_hosts SET name = lower(name);
    UPDATE maintenance_windows SET host_name = lower(host_name);
    CREATE UNIQUE INDEX hosts_name_ignoring_case ON hosts (lower(name));`);
}

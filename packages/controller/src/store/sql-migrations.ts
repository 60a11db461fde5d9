import { sql, type Kysely } from "kysely";
import type { Migration, MigrationProvider } from "kysely/migration";
import { ActivationMode, HostPhase } from "@ferry/protocol";
import type { SqlDialect } from "./sql-schema.js";

/**
 * The schema of both backends, one migration per change; never edit a shipped
 * one. The first one is the schema the SQLite-only releases reached (their
 * files are brought there by sqlite-legacy.ts first, so every statement here
 * says "if not exists").
 */
export function migrations(dialect: SqlDialect): MigrationProvider {
  // Every number here is a millisecond time, a serial or a small code: 64 bits on PostgreSQL, SQLite's integers are 64 bits anyway.
  const int = dialect === "postgres" ? "bigint" : "integer";
  const list: Record<string, Migration> = {
    "0001-schema": {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable("hosts")
          .ifNotExists()
          .addColumn("name", "text", (c) => c.primaryKey())
          .addColumn("token_hash", "text", (c) => c.notNull())
          .addColumn("tags", "text", (c) => c.notNull().defaultTo("[]"))
          .addColumn("created_at_ms", int, (c) => c.notNull())
          .addColumn("desired_system", "text", (c) => c.notNull().defaultTo(""))
          .addColumn("desired_serial", int, (c) => c.notNull().defaultTo(0))
          .addColumn("deployment_id", "text", (c) => c.notNull().defaultTo(""))
          .addColumn("activation_mode", int, (c) => c.notNull().defaultTo(ActivationMode.ACTIVATION_MODE_UNSPECIFIED))
          .addColumn("current_system", "text", (c) => c.notNull().defaultTo(""))
          .addColumn("phase", int, (c) => c.notNull().defaultTo(HostPhase.HOST_PHASE_IDLE))
          .addColumn("applied_serial", int, (c) => c.notNull().defaultTo(0))
          .addColumn("last_seen_ms", int, (c) => c.notNull().defaultTo(0))
          .addColumn("last_error_code", "text", (c) => c.notNull().defaultTo(""))
          .addColumn("last_error_message", "text", (c) => c.notNull().defaultTo(""))
          .addColumn("last_error_output", "text", (c) => c.notNull().defaultTo(""))
          .addColumn("agent_version", "text", (c) => c.notNull().defaultTo(""))
          .addColumn("desired_activate", int, (c) => c.notNull().defaultTo(1))
          .addColumn("rollout_id", "text", (c) => c.notNull().defaultTo(""))
          .addColumn("held_for_window", int, (c) => c.notNull().defaultTo(0))
          .addColumn("previous_system", "text", (c) => c.notNull().defaultTo(""))
          .addColumn("checks_failing", "text", (c) => c.notNull().defaultTo("[]"))
          .addColumn("checks_run", int, (c) => c.notNull().defaultTo(0))
          .addColumn("desired_intent", "text", (c) => c.notNull().defaultTo(""))
          .execute();
        // Host names ignore case; nothing may store two that differ only in case.
        await db.schema
          .createIndex("hosts_name_ignoring_case")
          .ifNotExists()
          .unique()
          .on("hosts")
          .expression(sql`lower(name)`)
          .execute();
        // The engine looks for held deployments every second: without this it reads every host to find none.
        await db.schema.createIndex("hosts_held_for_window").ifNotExists().on("hosts").column("name").where(sql.ref("held_for_window"), "=", 1).execute();
        await db.schema
          .createTable("deployments")
          .ifNotExists()
          .addColumn("id", "text", (c) => c.primaryKey())
          .addColumn("created_at_ms", int, (c) => c.notNull())
          .addColumn("targets", "text", (c) => c.notNull())
          .addColumn("requested_by", "text", (c) => c.notNull().defaultTo(""))
          .execute();
        await autoIncrementTable(db, dialect, "events")
          .addColumn("at_ms", int, (c) => c.notNull())
          .addColumn("host_name", "text", (c) => c.notNull())
          .addColumn("kind", "text", (c) => c.notNull())
          .addColumn("data", "text", (c) => c.notNull())
          .execute();
        await db.schema.createIndex("events_by_host").ifNotExists().on("events").columns(["host_name", "id"]).execute();
        await db.schema
          .createTable("rollouts")
          .ifNotExists()
          .addColumn("id", "text", (c) => c.primaryKey())
          .addColumn("state", "text", (c) => c.notNull())
          .addColumn("environment", "text", (c) => c.notNull())
          .addColumn("manifest_digest", "text", (c) => c.notNull())
          .addColumn("policy", "text", (c) => c.notNull())
          .addColumn("wave_count", int, (c) => c.notNull())
          .addColumn("current_wave", int, (c) => c.notNull())
          .addColumn("reason", "text", (c) => c.notNull())
          .addColumn("requested_by", "text", (c) => c.notNull())
          .addColumn("created_at_ms", int, (c) => c.notNull())
          .addColumn("updated_at_ms", int, (c) => c.notNull())
          .addColumn("phase_started_at_ms", int, (c) => c.notNull())
          .addColumn("resume_at_ms", int, (c) => c.notNull())
          .addColumn("mode", int, (c) => c.notNull().defaultTo(ActivationMode.ACTIVATION_MODE_UNSPECIFIED))
          .execute();
        await db.schema
          .createTable("rollout_hosts")
          .ifNotExists()
          .addColumn("rollout_id", "text", (c) => c.notNull().references("rollouts.id"))
          .addColumn("name", "text", (c) => c.notNull())
          .addColumn("store_path", "text", (c) => c.notNull())
          .addColumn("wave", int, (c) => c.notNull())
          .addColumn("state", "text", (c) => c.notNull())
          .addColumn("serial", int, (c) => c.notNull())
          .addColumn("error_code", "text", (c) => c.notNull())
          .addColumn("error_message", "text", (c) => c.notNull())
          .addColumn("previous_system", "text", (c) => c.notNull())
          .addColumn("updated_at_ms", int, (c) => c.notNull())
          .addColumn("intent", "text", (c) => c.notNull().defaultTo(""))
          .addPrimaryKeyConstraint("rollout_hosts_pkey", ["rollout_id", "name"])
          .execute();
        await db.schema
          .createTable("maintenance_windows")
          .ifNotExists()
          .addColumn("id", "text", (c) => c.primaryKey())
          .addColumn("host_name", "text", (c) => c.notNull())
          .addColumn("tag", "text", (c) => c.notNull())
          .addColumn("cron", "text", (c) => c.notNull())
          .addColumn("duration_ms", int, (c) => c.notNull())
          .addColumn("timezone", "text", (c) => c.notNull())
          .execute();
        await db.schema
          .createTable("operator_tokens")
          .ifNotExists()
          .addColumn("name", "text", (c) => c.primaryKey())
          .addColumn("token_hash", "text", (c) => c.notNull().unique())
          .addColumn("scopes", "text", (c) => c.notNull())
          .addColumn("tags", "text", (c) => c.notNull().defaultTo("[]"))
          .addColumn("environments", "text", (c) => c.notNull().defaultTo("[]"))
          .addColumn("created_at_ms", int, (c) => c.notNull())
          .addColumn("created_by", "text", (c) => c.notNull())
          .addColumn("expires_at_ms", int, (c) => c.notNull().defaultTo(0))
          .addColumn("revoked_at_ms", int, (c) => c.notNull().defaultTo(0))
          .addColumn("rotated_at_ms", int, (c) => c.notNull().defaultTo(0))
          .addColumn("builtin", int, (c) => c.notNull().defaultTo(0))
          .execute();
        await autoIncrementTable(db, dialect, "audit")
          .addColumn("at_ms", int, (c) => c.notNull())
          .addColumn("actor", "text", (c) => c.notNull())
          .addColumn("action", "text", (c) => c.notNull())
          .addColumn("target", "text", (c) => c.notNull())
          .addColumn("detail", "text", (c) => c.notNull())
          .execute();
        await db.schema.createIndex("audit_by_actor").ifNotExists().on("audit").columns(["actor", "id"]).execute();
        await db.schema.createIndex("audit_by_time").ifNotExists().on("audit").column("at_ms").execute();
        await db.schema
          .createTable("bundle_imports")
          .ifNotExists()
          .addColumn("site", "text", (c) => c.notNull())
          .addColumn("sequence", int, (c) => c.notNull())
          .addColumn("manifest_sha256", "text", (c) => c.notNull())
          .addColumn("created_at", "text", (c) => c.notNull())
          .addColumn("imported_at_ms", int, (c) => c.notNull())
          .addColumn("signer", "text", (c) => c.notNull())
          .addColumn("hosts", "text", (c) => c.notNull())
          .addPrimaryKeyConstraint("bundle_imports_pkey", ["site", "sequence"])
          .execute();
        await db.schema
          .createTable("bundle_floor")
          .ifNotExists()
          .addColumn("id", int, (c) => c.primaryKey().check(sql`id = 1`))
          .addColumn("sequence", int, (c) => c.notNull())
          .execute();
      },
    },
    // Replicas learn what another one changed by reading the hosts whose change_seq passed the value they last saw.
    "0002-change-clock": {
      async up(db: Kysely<unknown>) {
        await db.schema
          .alterTable("hosts")
          .addColumn("change_seq", int, (c) => c.notNull().defaultTo(0))
          .execute();
        await db.schema.createIndex("hosts_by_change").on("hosts").column("change_seq").execute();
        await db.schema
          .createTable("change_clock")
          .addColumn("id", int, (c) => c.primaryKey().check(sql`id = 1`))
          .addColumn("value", int, (c) => c.notNull())
          .execute();
        await sql`INSERT INTO change_clock (id, value) VALUES (1, 0)`.execute(db);
      },
    },
    // Rollout commands a replica that does not drive rollouts hands to the one that does.
    "0003-rollout-commands": {
      async up(db: Kysely<unknown>) {
        await autoIncrementTable(db, dialect, "rollout_commands")
          .addColumn("rollout_id", "text", (c) => c.notNull())
          .addColumn("action", "text", (c) => c.notNull())
          .addColumn("reason", "text", (c) => c.notNull())
          .addColumn("accept_failing_checks", int, (c) => c.notNull())
          .addColumn("created_at_ms", int, (c) => c.notNull())
          .addColumn("state", "text", (c) => c.notNull())
          .addColumn("error_code", "text", (c) => c.notNull().defaultTo(""))
          .addColumn("error_message", "text", (c) => c.notNull().defaultTo(""))
          .execute();
        await db.schema.createIndex("rollout_commands_pending").on("rollout_commands").column("id").where(sql.ref("state"), "=", "pending").execute();
      },
    },
  };
  return { getMigrations: async () => list };
}

function autoIncrementTable(db: Kysely<unknown>, dialect: SqlDialect, name: string) {
  const table = db.schema.createTable(name).ifNotExists();
  return dialect === "postgres"
    ? table.addColumn("id", "bigint", (c) => c.primaryKey().generatedByDefaultAsIdentity())
    : table.addColumn("id", "integer", (c) => c.primaryKey().autoIncrement());
}

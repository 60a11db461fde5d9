import Database from "better-sqlite3";
import { Kysely, PostgresDialect, SqliteDialect, type SqliteDatabase, type SqliteStatement } from "kysely";
import { Migrator } from "kysely/migration";
import pg from "pg";
import { FerryError } from "@ferry/core";
import { DEFAULT_HISTORY_RETENTION, type HistoryRetention } from "./state-store.js";
import { migrations } from "./sql-migrations.js";
import { LEGACY_SQLITE_MIGRATIONS } from "./sqlite-legacy.js";
import type { Schema, SqlDialect } from "./sql-schema.js";
import { SqlStateStore } from "./sql-store.js";

/** `--database`: a PostgreSQL URL, or absent for the data directory's SQLite file. */
export interface StoreLocation {
  database?: string | undefined;
  sqliteFile: string;
}

export interface StoreOptions {
  retention?: Pick<HistoryRetention, "eventsPerHost">;
  /** Errors of idle PostgreSQL connections (a server restart); queries that fail say so themselves. */
  onBackgroundError?: (error: Error) => void;
}

export function isPostgresUrl(value: string): boolean {
  return /^postgres(ql)?:\/\//.test(value);
}

/** The URL without its password, for logs and errors. */
export function redactDatabaseUrl(value: string): string {
  try {
    const url = new URL(value);
    if (url.password !== "") url.password = "***";
    return url.toString();
  } catch {
    return "(unparseable URL)";
  }
}

export async function openStateStore(location: StoreLocation, options: StoreOptions = {}): Promise<SqlStateStore> {
  if (location.database === undefined || location.database === "") return openSqliteStore(location.sqliteFile, options);
  if (!isPostgresUrl(location.database)) {
    throw new FerryError("E_BAD_ARGUMENT", `--database must be a postgres:// or postgresql:// URL, got ${JSON.stringify(location.database.slice(0, 80))}`);
  }
  return openPostgresStore(location.database, options);
}

/**
 * better-sqlite3 behind Kysely, with prepared statements kept: preparing cost
 * more than running the small statements a busy controller runs most.
 */
function cachingDatabase(db: Database.Database): SqliteDatabase {
  const prepared = new Map<string, SqliteStatement>();
  return {
    prepare(text: string): SqliteStatement {
      let statement = prepared.get(text);
      if (!statement) {
        // Statements naming lists of hosts vary in length; a bound keeps those from piling up.
        if (prepared.size >= 512) prepared.clear();
        statement = db.prepare(text) as unknown as SqliteStatement;
        prepared.set(text, statement);
      }
      return statement;
    },
    close: () => db.close(),
  };
}

export async function openSqliteStore(file: string, options: StoreOptions = {}): Promise<SqlStateStore> {
  const raw = new Database(file);
  try {
    raw.pragma("journal_mode = WAL");
    // FULL: a result acknowledged to an agent must survive power loss.
    raw.pragma("synchronous = FULL");
    raw.pragma("foreign_keys = ON");
    raw.pragma("busy_timeout = 5000");
    upgradeLegacySqlite(raw);
  } catch (error) {
    raw.close();
    throw error;
  }
  const db = new Kysely<Schema>({ dialect: new SqliteDialect({ database: cachingDatabase(raw) }) });
  try {
    await migrate(db, "sqlite", file);
  } catch (error) {
    // Closed here: the controller's failed start must leave no handle on the file.
    await db.destroy();
    throw error;
  }
  return new SqlStateStore(db, "sqlite", options.retention ?? DEFAULT_HISTORY_RETENTION);
}

/**
 * Brings a file of a SQLite-only release to the schema the shared migrations
 * start from, in one transaction: a migration that refuses (E_HOST_CASE_CLASH)
 * leaves the file exactly as that release wrote it. A new file skips them.
 */
function upgradeLegacySqlite(db: Database.Database): void {
  const version = db.pragma("user_version", { simple: true }) as number;
  if (version >= LEGACY_SQLITE_MIGRATIONS.length) return;
  const fresh = version === 0 && db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'hosts'").get() === undefined;
  db.transaction(() => {
    if (!fresh) {
      for (let next = version; next < LEGACY_SQLITE_MIGRATIONS.length; next++) {
        const migration = LEGACY_SQLITE_MIGRATIONS[next] as string | ((db: Database.Database) => void);
        if (typeof migration === "string") db.exec(migration);
        else migration(db);
      }
    }
    // Kept at the last legacy version, so that a release from before the shared migrations still opens a new file.
    db.pragma(`user_version = ${LEGACY_SQLITE_MIGRATIONS.length}`);
  })();
}

/** PostgreSQL's bigint arrives as a string; every one here is a time, a serial or a count, well within 2^53. */
function parseType(oid: number, format?: "text" | "binary"): (value: string) => unknown {
  if (oid === pg.types.builtins.INT8) return (value: string) => Number(value);
  return (format === "binary" ? pg.types.getTypeParser(oid, "binary") : pg.types.getTypeParser(oid, "text")) as (value: string) => unknown;
}

export async function openPostgresStore(url: string, options: StoreOptions = {}): Promise<SqlStateStore> {
  const pool = new pg.Pool({
    connectionString: url,
    max: 10,
    // A server that is down fails a query in seconds instead of holding its caller.
    connectionTimeoutMillis: 10_000,
    types: { getTypeParser: parseType } as pg.CustomTypesConfig,
    application_name: "ferry-controller",
  });
  pool.on("error", (error) => options.onBackgroundError?.(error));
  // A server restart also reaches connections a transaction holds between two statements: without a
  // listener of its own such a connection's error would end the process; the statement that uses it fails instead.
  pool.on("connect", (client) => client.on("error", (error) => options.onBackgroundError?.(error)));
  const db = new Kysely<Schema>({ dialect: new PostgresDialect({ pool }) });
  try {
    await migrate(db, "postgres", redactDatabaseUrl(url));
  } catch (error) {
    await db.destroy();
    throw error;
  }
  return new SqlStateStore(db, "postgres", options.retention ?? DEFAULT_HISTORY_RETENTION);
}

async function migrate(db: Kysely<Schema>, dialect: SqlDialect, where: string): Promise<void> {
  let results;
  try {
    // Replicas starting together: PostgreSQL's advisory lock lets one migrate while the others wait (Kysely's migration lock).
    results = await new Migrator({ db, provider: migrations(dialect) }).migrateToLatest();
  } catch (error) {
    throw databaseError(error, where);
  }
  if (results.error !== undefined) {
    const failed = results.results?.find((result) => result.status === "Error");
    throw databaseError(results.error, where, failed?.migrationName);
  }
}

function databaseError(error: unknown, where: string, migration?: string): FerryError {
  if (error instanceof FerryError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new FerryError("E_DATABASE", `${migration === undefined ? "cannot open" : `migration ${migration} failed on`} the database ${where}: ${message}`);
}

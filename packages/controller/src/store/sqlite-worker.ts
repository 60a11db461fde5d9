// The SQLite database of a controller without PostgreSQL, in its own thread.
// better-sqlite3 is synchronous: on the main thread every statement, and every
// commit's fsync, held up the event loop, so heartbeats waited behind a
// 10,000-host deploy. Here statements run one after another, as they arrive.
import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";

export interface WorkerQuery {
  id: number;
  sql: string;
  parameters: readonly unknown[];
}

export type WorkerAnswer =
  { id: number; rows: unknown[]; changes?: number | bigint; lastInsertRowid?: number | bigint } | { id: number; error: { message: string; code?: string } };

const db = new Database((workerData as { file: string }).file);
db.pragma("journal_mode = WAL");
// FULL: a result acknowledged to an agent must survive power loss.
db.pragma("synchronous = FULL");
db.pragma("foreign_keys = ON");
db.pragma("busy_timeout = 5000");

/** Prepared once: preparing costs more than running the small statements a busy controller runs most. */
const prepared = new Map<string, Database.Statement>();

function statement(sql: string): Database.Statement {
  let found = prepared.get(sql);
  if (!found) {
    // Statements naming lists of hosts vary in length; a bound keeps those from piling up.
    if (prepared.size >= 512) prepared.clear();
    found = db.prepare(sql);
    prepared.set(sql, found);
  }
  return found;
}

function run(query: WorkerQuery): WorkerAnswer {
  try {
    const prepared = statement(query.sql);
    if (prepared.reader) return { id: query.id, rows: prepared.all(...query.parameters) };
    const { changes, lastInsertRowid } = prepared.run(...query.parameters);
    return { id: query.id, rows: [], changes, lastInsertRowid };
  } catch (error) {
    const failure = error as { message?: string; code?: string };
    return { id: query.id, error: { message: String(failure.message ?? error), ...(failure.code ? { code: failure.code } : {}) } };
  }
}

parentPort?.on("message", (message: WorkerQuery | "close") => {
  if (message === "close") {
    db.close();
    parentPort?.postMessage("closed");
    return;
  }
  parentPort?.postMessage(run(message));
});

import { existsSync } from "node:fs";
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { CompiledQuery, SqliteDialect, type DatabaseConnection, type Driver, type QueryResult, type TransactionSettings } from "kysely";
import type { WorkerAnswer, WorkerQuery } from "./sqlite-worker.js";

/**
 * The worker beside this module when built. Tests that run the sources
 * through tsx use the built one too: a worker thread does not get tsx's loader.
 */
const WORKER_URL =
  extname(fileURLToPath(import.meta.url)) === ".ts"
    ? new URL("../../dist/store/sqlite-worker.js", import.meta.url)
    : new URL("./sqlite-worker.js", import.meta.url);

class WorkerConnection implements DatabaseConnection {
  private next = 0;
  private readonly waiting = new Map<number, { resolve: (answer: WorkerAnswer) => void; reject: (error: Error) => void }>();
  private failure: Error | undefined;

  constructor(readonly worker: Worker) {
    worker.on("message", (answer: WorkerAnswer | "closed") => {
      if (answer === "closed") return;
      const pending = this.waiting.get(answer.id);
      this.waiting.delete(answer.id);
      pending?.resolve(answer);
    });
    worker.on("error", (error) => this.fail(error));
    worker.on("exit", (code) => this.fail(new Error(`the SQLite thread exited (code ${code})`)));
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const pending of this.waiting.values()) pending.reject(error);
    this.waiting.clear();
  }

  async executeQuery<R>(compiled: CompiledQuery): Promise<QueryResult<R>> {
    if (this.failure) throw this.failure;
    const id = ++this.next;
    const query: WorkerQuery = { id, sql: compiled.sql, parameters: compiled.parameters };
    const answer = await new Promise<WorkerAnswer>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.worker.postMessage(query);
    });
    if ("error" in answer) {
      // Thrown here, so that the caller's stack and catch see it as any SQLite error.
      throw Object.assign(new Error(answer.error.message), answer.error.code ? { code: answer.error.code } : {});
    }
    return {
      rows: answer.rows as R[],
      ...(answer.changes === undefined ? {} : { numAffectedRows: BigInt(answer.changes) }),
      ...(answer.lastInsertRowid === undefined ? {} : { insertId: BigInt(answer.lastInsertRowid) }),
    };
  }

  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error("streaming queries are not used with the SQLite thread");
  }
}

class WorkerDriver implements Driver {
  private connection: WorkerConnection | undefined;

  constructor(private readonly file: string) {}

  async init(): Promise<void> {
    if (!existsSync(WORKER_URL)) throw new Error(`${fileURLToPath(WORKER_URL)} is missing: build Ferry first (npm run build)`);
    // No flags of the main thread: a worker refuses some (--input-type), and it needs none (it runs built JavaScript).
    const worker = new Worker(WORKER_URL, { workerData: { file: this.file }, execArgv: [] });
    this.connection = new WorkerConnection(worker);
    // The first statement also waits for the thread to open the file (or to fail trying).
    await this.connection.executeQuery(CompiledQuery.raw("SELECT 1"));
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    return this.connection as WorkerConnection;
  }

  async beginTransaction(connection: DatabaseConnection, _settings: TransactionSettings): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw("begin"));
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw("commit"));
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw("rollback"));
  }

  async releaseConnection(): Promise<void> {
    // One connection, handed out one user at a time by Kysely's own lock (SQLite supports no more).
  }

  async destroy(): Promise<void> {
    const worker = this.connection?.worker;
    if (!worker) return;
    await new Promise<void>((resolve) => {
      worker.once("message", () => resolve());
      worker.once("exit", () => resolve());
      worker.postMessage("close");
    });
    await worker.terminate();
  }
}

/** Kysely's SQLite dialect with the statements run on their own thread (sqlite-worker.ts). */
export class SqliteWorkerDialect extends SqliteDialect {
  constructor(private readonly file: string) {
    // The parent's driver is never created: createDriver below replaces it.
    super({ database: async () => Promise.reject(new Error("unused")) });
  }

  override createDriver(): Driver {
    return new WorkerDriver(this.file);
  }
}

import type { RolloutAction, RolloutCommand, RolloutCommandQueue, RolloutCommandState } from "./rollout-records.js";
import type { Db } from "./sql-schema.js";

export class SqlRolloutCommands implements RolloutCommandQueue {
  constructor(private readonly db: Db) {}

  async queue(command: Omit<RolloutCommand, "id">): Promise<number> {
    const { id } = await this.db
      .insertInto("rollout_commands")
      .values({
        rollout_id: command.rolloutId,
        action: command.action,
        reason: command.reason,
        accept_failing_checks: command.acceptFailingChecks ? 1 : 0,
        created_at_ms: command.createdAtMs,
        state: "pending",
        error_code: "",
        error_message: "",
      })
      .returning("id")
      .executeTakeFirstOrThrow();
    return id;
  }

  async claim(): Promise<RolloutCommand[]> {
    const rows = await this.db.updateTable("rollout_commands").set({ state: "running" }).where("state", "=", "pending").returningAll().execute();
    return rows
      .sort((a, b) => a.id - b.id)
      .map((row) => ({
        id: row.id,
        rolloutId: row.rollout_id,
        action: row.action as RolloutAction,
        reason: row.reason,
        acceptFailingChecks: row.accept_failing_checks === 1,
        createdAtMs: row.created_at_ms,
      }));
  }

  async finish(id: number, outcome: { errorCode: string; errorMessage: string } | undefined): Promise<void> {
    await this.db
      .updateTable("rollout_commands")
      .set(outcome ? { state: "failed", error_code: outcome.errorCode, error_message: outcome.errorMessage } : { state: "done" })
      .where("id", "=", id)
      .execute();
  }

  async expire(id: number): Promise<boolean> {
    const { numUpdatedRows } = await this.db
      .updateTable("rollout_commands")
      .set({ state: "expired" })
      .where("id", "=", id)
      .where("state", "=", "pending")
      .executeTakeFirst();
    return numUpdatedRows > 0n;
  }

  async state(id: number): Promise<RolloutCommandState> {
    const row = await this.db.selectFrom("rollout_commands").selectAll().where("id", "=", id).executeTakeFirst();
    if (!row) return { state: "expired" };
    if (row.state === "failed") return { state: "failed", errorCode: row.error_code, errorMessage: row.error_message };
    return { state: row.state as "pending" | "running" | "expired" | "done" };
  }

  async prune(olderThanMs: number): Promise<number> {
    const { numDeletedRows } = await this.db.deleteFrom("rollout_commands").where("created_at_ms", "<", olderThanMs).executeTakeFirst();
    return Number(numDeletedRows);
  }
}

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { FerryError, writeFileAtomic } from "@ferry/core";

/** The intent this host last began to apply: nothing signed with a lower version is taken after it. */
export interface IntentFloorRecord {
  version: number;
  /** Its canonical text: the very same intent delivered again is no replay. */
  intent: string;
  signer: string;
  appliedAtMs: number;
}

interface FloorFile {
  version: 1;
  floor: IntentFloorRecord | null;
}

export const INTENT_FLOOR_FILE = "intent-floor.json";

/**
 * The version floor of signed deploy intents, in its own file beside the
 * transaction state. Unlike that state, an unreadable floor is never
 * replaced by an empty one: that would let any old intent through again. It
 * stays unreadable (E_INTENT_STATE on every signed deployment) until an
 * operator restores or deliberately removes the file.
 */
export class IntentFloor {
  readonly path: string;

  constructor(stateDir: string) {
    this.path = join(stateDir, INTENT_FLOOR_FILE);
  }

  /** The current floor, null when this host never applied a signed intent. */
  read(): IntentFloorRecord | null {
    let text: string;
    try {
      text = readFileSync(this.path, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw new FerryError("E_INTENT_STATE", `cannot read ${this.path}: ${(error as Error).message}`);
    }
    try {
      const parsed = JSON.parse(text) as FloorFile;
      const floor = parsed.floor;
      if (parsed.version !== 1) throw new Error(`unknown version ${String(parsed.version)}`);
      if (floor !== null && !(Number.isSafeInteger(floor.version) && floor.version > 0 && typeof floor.intent === "string")) {
        throw new Error("the floor record is malformed");
      }
      return floor;
    } catch (error) {
      throw new FerryError("E_INTENT_STATE", `${this.path} is unreadable (${(error as Error).message}); signed deployments are refused until it is restored`);
    }
  }

  /** Raises the floor to `record` (atomically, before anything is switched); never lowers it. */
  raise(record: IntentFloorRecord): void {
    const current = this.read();
    if (current && current.version > record.version) return;
    const file: FloorFile = { version: 1, floor: record };
    writeFileAtomic(this.path, `${JSON.stringify(file, null, 2)}\n`, 0o600);
  }
}

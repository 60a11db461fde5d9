import { existsSync, renameSync } from "node:fs";
import { readFile, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import type { ServerReadableStream, ServerWritableStream, UntypedServiceImplementation, sendUnaryData } from "@grpc/grpc-js";
import {
  BundleLedger,
  assertBundleAcceptable,
  readBundlePolicy,
  FerryError,
  Turns,
  MAX_MANIFEST_BYTES,
  intentsByHost,
  parseManifest,
  parseNarInfo,
  parsePublicKeys,
  parseStorePath,
  sha256Hex,
  verifyManifestSignature,
  type BundleManifest,
} from "@ferry/core";
import { StartRolloutRequest } from "@ferry/protocol";
import type {
  ActivationMode,
  InventoryRequest,
  InventoryResponse,
  PublishBundleRequest,
  PublishBundleResponse,
  RolloutPolicy,
  SiteServiceServer,
} from "@ferry/protocol";
import type { RolloutEngine } from "../rollouts/engine.js";
import { planRollout } from "../rollouts/start.js";
import type { RolloutRecord } from "../store/rollout-records.js";
import type { BundleLedgerStore } from "../store/bundle-records.js";
import { recordDeploy } from "./deploy.js";
import { requireClosuresInCache } from "../desired/closures.js";
import { checkTargetIntents, validateTargets } from "../desired/targets.js";
import { toServiceError } from "./grpc-errors.js";
import { toHostStatus } from "./host-status.js";
import { admitRpc } from "./unary.js";
import type { ApiDeps } from "./api-deps.js";

export interface SiteServiceDeps extends ApiDeps {
  /** Drives the rollouts bundle imports start. */
  engine?: Pick<RolloutEngine, "begin">;
  /** The controller's data directory: holds bundle-trusted-keys and the bundle ledger. */
  dataDir: string;
}

/** One Nix public key (NAME:BASE64) per line; '#' starts a comment. Read at every publish, so keys rotate without a restart. */
export const BUNDLE_TRUSTED_KEYS_FILE = "bundle-trusted-keys";
export const BUNDLE_LEDGER_FILE = "bundles.json";
/** `{"siteName": "…", "minSequence": N}`: read at every import, like the trusted keys. */
export const BUNDLE_POLICY_FILE = "bundle-policy.json";
const INVENTORY_BATCH = 1000;

export async function readTrustedKeys(dataDir: string): Promise<string[]> {
  const text = await readFile(join(dataDir, BUNDLE_TRUSTED_KEYS_FILE), "utf8").catch(() => "");
  return text
    .split("\n")
    .map((line) => line.replace(/#.*/, "").trim())
    .filter(Boolean);
}

/** PublishBundle streams buffered at once, and how long one may take to send its manifest. */
const MAX_PUBLISH_STREAMS = 2;
const PUBLISH_DEADLINE_MS = 10 * 60_000;

/** Site state shared by the PublishBundle RPC and the single-pass upload endpoint (bundle-upload.ts). */
export interface BundleSite {
  deps: SiteServiceDeps;
  /** The bundles taken, in the controller's database. */
  ledger: BundleLedgerStore;
  /** Publishes run one at a time, so two bundles cannot both pass the sequence check. */
  serialized<T>(work: () => Promise<T>): Promise<T>;
  /** The controller's own trusted keys, read afresh each time (keys rotate without a restart). */
  trustedKeys(): Promise<string[]>;
  /** Checks that record nothing: sequence above the ledger's, hosts known and intents matching (with deploy), omitted paths present. */
  precheck(manifest: BundleManifest, deploy: boolean, mode: ActivationMode): Promise<void>;
  /** Records the import in the ledger and, with deploy, the desired systems, under the importing token's name. The caller has checked the cache. */
  record(
    manifest: BundleManifest,
    manifestBytes: Buffer,
    signer: string,
    deploy: boolean,
    mode: ActivationMode,
    importedBy: string,
  ): Promise<PublishBundleResponse>;
  /**
   * Plans a rollout of the bundle's hosts through the same code as `ferry
   * rollout start`, recording nothing: before the files are published
   * (`closures: "later"`) and again after, before the import is recorded.
   */
  planRollout(manifest: BundleManifest, mode: ActivationMode, policy: RolloutPolicy, closures: "check" | "later", importedBy: string): Promise<RolloutRecord>;
  /** Stores a planned rollout and wakes the engine. */
  startRollout(plan: RolloutRecord): Promise<RolloutRecord>;
}

/**
 * Moves the ledger file of an earlier version (bundles.json) into the
 * database, once; the file is kept beside as bundles.json.adopted. A
 * controller killed in between adopts nothing twice: the database refuses a
 * second adoption, and the file is renamed on the next start.
 */
export async function adoptLedgerFile(dataDir: string, ledger: BundleLedgerStore, log: SiteServiceDeps["log"]): Promise<void> {
  const file = join(dataDir, BUNDLE_LEDGER_FILE);
  if (!existsSync(file)) return;
  const adopted = await ledger.adopt(new BundleLedger(file).snapshot());
  renameSync(file, `${file}.adopted`);
  log.info({ file, adopted }, adopted ? "bundle ledger moved into the database" : "bundle ledger file set aside: the database already holds the ledger");
}

export function createBundleSite(deps: SiteServiceDeps): BundleSite {
  const now = deps.now ?? Date.now;
  const ledger = deps.store.bundles;
  const publishes = new Turns();
  // The bundle's signed intents travel with its hosts' desired systems, unchanged.
  const targetsOf = (manifest: BundleManifest) => {
    const intents = intentsByHost(manifest.intents);
    return Object.entries(manifest.hosts).map(([hostName, storePath]) => ({ hostName, storePath, intent: intents.get(hostName) }));
  };

  async function requireOmittedPresent(manifest: BundleManifest): Promise<void> {
    const absent: string[] = [];
    for (const entry of manifest.omitted) {
      if (!(await deps.cache.narInfo(parseStorePath(entry.storePath).hash))) absent.push(entry.storePath);
    }
    if (absent.length > 0) {
      throw new FerryError("E_BUNDLE_INCOMPLETE", `this delta bundle leaves out ${absent.length} path(s) the site does not have, e.g. ${absent[0]}`);
    }
  }

  return {
    deps,
    ledger,
    planRollout: (manifest, mode, policy, closures, importedBy) =>
      planRollout(
        deps.store,
        deps.cache,
        StartRolloutRequest.fromPartial({
          targets: targetsOf(manifest),
          policy,
          mode,
          environment: manifest.site ?? "",
          requestedBy: `${importedBy} (bundle ${manifest.sequence})`,
        }),
        now(),
        { closures },
      ),
    async startRollout(plan) {
      if (!deps.engine) throw new FerryError("E_INTERNAL", "this controller runs no rollout engine");
      const started = await deps.engine.begin(plan);
      deps.log.info({ rolloutId: plan.id, hosts: plan.hosts.length, waves: plan.waveCount, requestedBy: plan.requestedBy }, "rollout started from a bundle");
      return started;
    },
    serialized: (work) => publishes.run(work),
    trustedKeys: () => readTrustedKeys(deps.dataDir),
    async precheck(manifest, deploy, mode) {
      assertBundleAcceptable(manifest, readBundlePolicy(join(deps.dataDir, BUNDLE_POLICY_FILE)), now(), await ledger.lastSequence(manifest.site ?? ""));
      if (deploy) {
        await validateTargets(deps.store, targetsOf(manifest));
        checkTargetIntents(targetsOf(manifest), mode, now());
      }
      await requireOmittedPresent(manifest);
    },
    async record(manifest, manifestBytes, signer, deploy, mode, importedBy) {
      const entry = {
        sequence: manifest.sequence,
        manifestSha256: sha256Hex(manifestBytes),
        createdAt: manifest.createdAt,
        importedAtMs: now(),
        signer,
        hosts: manifest.hosts,
        ...(manifest.site === null ? {} : { site: manifest.site }),
      };
      // With deploy, the ledger line commits with the desired systems: neither is ever recorded without the other.
      const deployed = deploy
        ? await recordDeploy(deps.store, deps.desired, targetsOf(manifest), { mode, ignoreWindows: false, requestedBy: importedBy, bundle: entry }, now())
        : undefined;
      if (!deployed) await ledger.record(entry);
      deps.log.info(
        { sequence: manifest.sequence, signer, paths: manifest.paths.length, hosts: Object.keys(manifest.hosts), token: importedBy },
        "bundle imported",
      );
      const base = { sequence: manifest.sequence, signer, paths: manifest.paths.length, deploymentId: "", hosts: [] };
      const audited = { sequence: manifest.sequence, signer, paths: manifest.paths.length, hosts: manifest.hosts, deploy };
      if (!deployed) {
        await deps.audit.record(importedBy, "bundle.import", `sequence ${manifest.sequence}`, audited);
        return base;
      }
      const { deploymentId, records } = deployed;
      await deps.audit.record(importedBy, "bundle.import", `sequence ${manifest.sequence}`, { ...audited, deploymentId });
      return { ...base, deploymentId, hosts: records.map((record) => toHostStatus(record, deps.hub)) };
    },
  };
}

/**
 * The site controller's side of the two-step bundle import (older CLIs, and
 * `ferry bundle import --two-pass`): the CLI verifies the whole bundle and
 * uploads its files to the cache; this service then checks, with the
 * controller's own trusted keys, that the manifest is signed, newer than every
 * bundle before it, and that the cache holds exactly the files it lists,
 * before it records anything. A refused publish writes nothing. The
 * single-pass import (PUT /bundles/upload) is in bundle-upload.ts.
 */
export function createSiteService(deps: SiteServiceDeps, site: BundleSite = createBundleSite(deps)): SiteServiceServer & UntypedServiceImplementation {
  const { ledger, serialized } = site;

  /** The cache must hold the very narinfos the manifest lists (byte for byte) and NARs of the listed sizes. */
  async function requireBundleFilesInCache(manifest: BundleManifest): Promise<void> {
    for (const path of manifest.paths) {
      const narinfo = join(deps.cache.dir, path.narinfo.file);
      const text = await readFile(narinfo).catch(() => undefined);
      if (!text) throw new FerryError("E_BUNDLE_INCOMPLETE", `the cache lacks ${path.narinfo.file}; upload the bundle first (ferry bundle import)`);
      if (text.length !== path.narinfo.size || sha256Hex(text) !== path.narinfo.sha256) {
        throw new FerryError("E_BUNDLE_TAMPERED", `the cache's ${path.narinfo.file} differs from the one the signed manifest lists`);
      }
      const nar = await stat(join(deps.cache.dir, path.nar.file)).catch(() => undefined);
      if (nar?.size !== path.nar.size) throw new FerryError("E_BUNDLE_TAMPERED", `the cache's ${path.nar.file} is missing or of the wrong size`);
    }
  }

  async function publish(header: PublishBundleRequest, manifestBytes: Buffer, importedBy: string): Promise<PublishBundleResponse> {
    const signer = verifyManifestSignature(manifestBytes, header.manifestSignature, parsePublicKeys(await site.trustedKeys()));
    const manifest = parseManifest(manifestBytes);
    await site.precheck(manifest, header.deploy, header.mode);
    if (header.checkOnly) return { sequence: manifest.sequence, signer, paths: manifest.paths.length, deploymentId: "", hosts: [] };
    await requireBundleFilesInCache(manifest);
    // Completeness only: the bundle's own narinfos were verified against the site's keys above.
    await requireClosuresInCache(deps.cache, Object.values(manifest.hosts), { allowUnsigned: true });
    return site.record(manifest, manifestBytes, signer, header.deploy, header.mode, importedBy);
  }

  let publishStreams = 0;

  /** Buffers the manifest of an admitted PublishBundle stream, then publishes it. */
  function receive(
    call: ServerReadableStream<PublishBundleRequest, PublishBundleResponse>,
    callback: sendUnaryData<PublishBundleResponse>,
    importedBy: string,
    refuse: (error: unknown) => void,
  ): void {
    if (call.cancelled) return;
    if (publishStreams >= MAX_PUBLISH_STREAMS) {
      refuse(new FerryError("E_BUSY", `${MAX_PUBLISH_STREAMS} bundle publications are already in progress`));
      return;
    }
    publishStreams++;
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      publishStreams--;
      clearTimeout(deadline);
    };
    const deadline = setTimeout(() => {
      finish();
      refuse(new FerryError("E_BUSY", `the manifest did not arrive within ${PUBLISH_DEADLINE_MS / 1000} s`));
    }, PUBLISH_DEADLINE_MS);
    deadline.unref();
    let header: PublishBundleRequest | undefined;
    const chunks: Buffer[] = [];
    let size = 0;
    let failed: unknown;
    call.on("data", (message: PublishBundleRequest) => {
      header ??= message;
      size += message.manifestChunk.length;
      if (size > MAX_MANIFEST_BYTES) failed ??= new FerryError("E_BUNDLE_FORMAT", `the manifest exceeds ${MAX_MANIFEST_BYTES} bytes`);
      else chunks.push(Buffer.from(message.manifestChunk));
    });
    call.on("error", () => finish());
    call.on("cancelled", () => finish());
    call.on("end", () => {
      if (finished) return;
      Promise.resolve()
        .then(() => {
          if (failed) throw failed;
          if (!header) throw new FerryError("E_BAD_ARGUMENT", "PublishBundle received no manifest");
          const first = header;
          return serialized(() => publish(first, Buffer.concat(chunks), importedBy));
        })
        .finally(finish)
        .then((response) => callback(null, response), refuse);
    });
  }

  return {
    publishBundle: (call: ServerReadableStream<PublishBundleRequest, PublishBundleResponse>, callback: sendUnaryData<PublishBundleResponse>): void => {
      const refuse = (error: unknown): void => {
        deps.log.info({ rpc: "PublishBundle", code: error instanceof FerryError ? error.code : "E_INTERNAL", err: (error as Error).message }, "bundle refused");
        callback(toServiceError(error));
      };
      // The token is in the call's metadata: check it before reading a byte of the stream
      // (nothing flows until receive() listens for data).
      admitRpc(deps.authenticator, call, "PublishBundle").then((caller) => receive(call, callback, caller.name, refuse), refuse);
    },

    inventory: (call: ServerWritableStream<InventoryRequest, InventoryResponse>): void => {
      admitRpc(deps.authenticator, call, "Inventory")
        .then(async () => {
          const { siteName } = readBundlePolicy(join(deps.dataDir, BUNDLE_POLICY_FILE));
          const lastSequence = siteName === undefined ? await ledger.highestSequence() : await ledger.lastSequence(siteName);
          const names = (await readdir(deps.cache.dir)).filter((name) => /^[0-9a-z]{32}\.narinfo$/.test(name)).sort();
          let batch: string[] = [];
          for (const name of names) {
            const text = await readFile(join(deps.cache.dir, name), "utf8").catch(() => undefined);
            if (text === undefined) continue;
            let info: ReturnType<typeof parseNarInfo>;
            try {
              info = parseNarInfo(text);
            } catch {
              continue;
            }
            if (!(await stat(join(deps.cache.dir, info.url)).catch(() => undefined))) continue;
            batch.push(info.storePath);
            if (batch.length >= INVENTORY_BATCH) {
              call.write({ storePaths: batch, lastSequence });
              batch = [];
            }
          }
          call.write({ storePaths: batch, lastSequence });
          call.end();
        })
        // grpc-js sends a stream's status from end(), which its "error" handler calls; destroy() would send none.
        .catch((error: unknown) => call.emit("error", toServiceError(error)));
    },
  };
}

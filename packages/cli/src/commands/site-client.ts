import { createReadStream } from "node:fs";
import { request as httpRequest, Agent as HttpAgent, type IncomingMessage } from "node:http";
import { request as httpsRequest, Agent as HttpsAgent } from "node:https";
import { createHash } from "node:crypto";
import {
  FerryError,
  HEAD_FILE,
  HEAD_SIGNATURE_FILE,
  MANIFEST_FILE,
  SIGNATURE_FILE,
  TarReader,
  readBundleStart,
  type BundleFile,
  type BundleManifest,
  type TlsMaterial,
} from "@ferry/core";
import { ActivationMode, SiteServiceClient, type InventoryResponse, type PublishBundleResponse } from "@ferry/protocol";
import { toCliError, type OperatorConnection } from "../client.js";
import { counted } from "../progress.js";

const CHUNK = 1024 * 1024;

export function siteClient(connection: OperatorConnection): SiteServiceClient {
  return new SiteServiceClient(connection.address, connection.transport.credentials, { "grpc.max_receive_message_length": 64 * 1024 * 1024 });
}

/** Sends manifest + signature to SiteService.PublishBundle, the manifest split into 1 MiB messages. */
export function publishBundle(
  connection: OperatorConnection,
  client: SiteServiceClient,
  manifestBytes: Buffer,
  signature: string,
  options: { deploy: boolean; mode: ActivationMode; checkOnly: boolean },
): Promise<PublishBundleResponse> {
  return new Promise((resolve, reject) => {
    const stream = client.publishBundle(connection.metadata(), { deadline: new Date(Date.now() + 120_000) }, (error, response) =>
      error ? reject(toCliError(error)) : resolve(response),
    );
    for (let offset = 0; offset === 0 || offset < manifestBytes.length; offset += CHUNK) {
      const chunk = manifestBytes.subarray(offset, offset + CHUNK);
      stream.write(
        offset === 0
          ? { manifestChunk: chunk, manifestSignature: signature, ...options }
          : { manifestChunk: chunk, manifestSignature: "", deploy: false, mode: 0, checkOnly: false },
      );
    }
    stream.end();
  });
}

export function readInventory(connection: OperatorConnection, client: SiteServiceClient): Promise<{ storePaths: string[]; lastSequence: number }> {
  return new Promise((resolve, reject) => {
    const storePaths: string[] = [];
    let lastSequence = 0;
    const stream = client.inventory({}, connection.metadata(), { deadline: new Date(Date.now() + 300_000) });
    stream.on("data", (message: InventoryResponse) => {
      storePaths.push(...message.storePaths);
      lastSequence = message.lastSequence;
    });
    stream.on("error", (error: Parameters<typeof toCliError>[0]) => reject(toCliError(error)));
    stream.on("end", () => resolve({ storePaths, lastSequence }));
  });
}

/** The controller's cache URL, as `ferry cache push` finds it. */
const IN_FLIGHT = 6;

/**
 * Second pass over an already verified bundle: PUTs each cache file with the
 * operator token. Up to IN_FLIGHT uploads overlap (the cache syncs each file
 * to disk before it answers), but a narinfo is sent only once its NAR was
 * stored, so the cache never holds a narinfo without its NAR. Each file is
 * hashed again on the way and its last bytes are sent only once the hash
 * matches the manifest: a file changed since the verification pass is aborted
 * mid-upload, and the cache, which keeps only complete uploads, stores nothing of it.
 */
export async function uploadBundleFiles(
  file: string,
  manifest: BundleManifest,
  cacheUrl: string,
  token: string,
  tls: TlsMaterial = {},
  /** Hears of the bundle's bytes as they are read to be sent. */
  onBytes?: (bytes: number) => void,
): Promise<{ files: number; bytes: number }> {
  const expected = new Map<string, BundleFile>([[manifest.nixCacheInfo.file, manifest.nixCacheInfo]]);
  const narOf = new Map<string, string>();
  for (const path of manifest.paths) {
    expected.set(path.nar.file, path.nar);
    expected.set(path.narinfo.file, path.narinfo);
    narOf.set(path.narinfo.file, path.nar.file);
  }
  const base = new URL(cacheUrl.endsWith("/") ? cacheUrl : `${cacheUrl}/`);
  const secure = base.protocol === "https:";
  const agent = secure ? new HttpsAgent({ keepAlive: true, maxSockets: IN_FLIGHT, ...tls }) : new HttpAgent({ keepAlive: true, maxSockets: IN_FLIGHT });
  const reader = new TarReader(counted(createReadStream(file, { highWaterMark: CHUNK }), onBytes));
  // Version 2 carries its manifest and signature last: they are skipped there like here.
  await readBundleStart(reader);
  const pending = new Map<string, Promise<void>>();
  let failure: unknown;
  let files = 0;
  let bytes = 0;
  const settle = async (name: string): Promise<void> => {
    const upload = pending.get(name);
    if (!upload) return;
    pending.delete(name);
    await upload;
  };
  try {
    for (let entry = await reader.next(); entry; entry = await reader.next()) {
      if (failure) throw failure;
      if (entry.name === MANIFEST_FILE || entry.name === SIGNATURE_FILE || entry.name === HEAD_FILE || entry.name === HEAD_SIGNATURE_FILE) {
        await reader.skip();
        continue;
      }
      const want = expected.get(entry.name);
      if (!want || want.size !== entry.size) throw new FerryError("E_BUNDLE_TAMPERED", `${entry.name} changed since the bundle was verified`);
      // The cache serves its own nix-cache-info; the bundle's copy is for file:// use only.
      if (entry.name === manifest.nixCacheInfo.file) {
        await reader.skip();
        continue;
      }
      const nar = narOf.get(entry.name);
      if (nar) await settle(nar);
      while (pending.size >= IN_FLIGHT) await settle(pending.keys().next().value as string);
      const target = new URL(entry.name, base);
      const request = (secure ? httpsRequest : httpRequest)(target, {
        method: "PUT",
        agent,
        headers: { authorization: `Bearer ${token}`, "content-length": entry.size, "content-type": "application/octet-stream" },
      });
      const response = new Promise<IncomingMessage>((resolve, reject) => {
        request.on("response", resolve);
        request.on("error", reject);
      });
      const hash = createHash("sha256");
      let sent = 0;
      for await (const chunk of reader.body()) {
        hash.update(chunk);
        sent += chunk.length;
        if (sent === entry.size && hash.digest("hex") !== want.sha256) {
          request.destroy();
          await response.catch(() => undefined);
          throw new FerryError("E_BUNDLE_TAMPERED", `${entry.name} changed since the bundle was verified; its upload was aborted`);
        }
        if (!request.write(chunk)) await new Promise((resolve) => request.once("drain", resolve));
      }
      request.end();
      const name = entry.name;
      const size = entry.size;
      const done = checkResponse(name, target, response).then(() => {
        files++;
        bytes += size;
      });
      // Remember the first failure; it is thrown at the next step.
      done.catch((error: unknown) => (failure ??= error));
      pending.set(name, done);
    }
    for (const name of [...pending.keys()]) await settle(name);
    if (failure) throw failure;
  } finally {
    await Promise.allSettled(pending.values());
    agent.destroy();
  }
  return { files, bytes };
}

async function checkResponse(name: string, target: URL, response: Promise<IncomingMessage>): Promise<void> {
  const answer = await response.catch((error: Error) => {
    throw new FerryError("E_CACHE_UPLOAD", `uploading ${name} to ${target.href}: ${error.message}`);
  });
  const body = await new Promise<string>((resolve) => {
    let text = "";
    answer.setEncoding("utf8");
    answer.on("data", (piece: string) => (text += piece.slice(0, 2000)));
    answer.on("end", () => resolve(text));
  });
  if (answer.statusCode === 401) throw new FerryError("E_AUTH", `the cache refused the operator token: ${body.trim()}`);
  if (answer.statusCode !== 201 && answer.statusCode !== 200)
    throw new FerryError("E_CACHE_UPLOAD", `uploading ${name}: HTTP ${answer.statusCode}: ${body.trim()}`);
}

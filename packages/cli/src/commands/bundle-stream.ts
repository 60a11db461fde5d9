import { createReadStream, statSync } from "node:fs";
import { request as httpRequest, type ClientRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { FerryError, isErrorCode, verifyBundle, type Mode, type TlsMaterial, type VerifiedBundle } from "@ferry/core";
import { PublishBundleResponse, Rollout, RolloutPolicy } from "@ferry/protocol";

const CHUNK = 1024 * 1024;

/** The controller's single-pass import endpoint: `bundles/upload` beside the cache (`…/cache` → `…/bundles/upload`). */
export function bundleUploadUrl(cacheUrl: string): URL {
  return new URL("../bundles/upload", cacheUrl.endsWith("/") ? cacheUrl : `${cacheUrl}/`);
}

function send(url: URL, method: string, token: string, tls: TlsMaterial, size?: number): ClientRequest {
  const options = {
    method,
    headers: { authorization: `Bearer ${token}`, ...(size === undefined ? {} : { "content-type": "application/x-ferry-bundle", "content-length": size }) },
  };
  return url.protocol === "https:" ? httpsRequest(url, { ...tls, ...options }) : httpRequest(url, options);
}

function readReply(answer: IncomingMessage): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    let body = "";
    answer.setEncoding("utf8");
    answer.on("data", (piece: string) => (body += body.length < 1 << 20 ? piece : ""));
    answer.on("end", () => resolve({ status: answer.statusCode ?? 0, body }));
    answer.on("error", reject);
  });
}

/** Whether the controller has the endpoint (405 to a GET); a controller from before it answers 404. */
export async function supportsSinglePass(url: URL, token: string, tls: TlsMaterial = {}): Promise<boolean> {
  const request = send(url, "GET", token, tls);
  const reply = await new Promise<{ status: number }>((resolve, reject) => {
    request.on("response", (answer: IncomingMessage) => void readReply(answer).then(resolve, reject));
    request.on("error", (error) => reject(new FerryError("E_CACHE_UPLOAD", `cannot reach ${url.origin}: ${error.message}`)));
    request.end();
  });
  return reply.status === 405;
}

function controllerError(status: number, body: string): FerryError {
  let parsed: { error?: { code?: string; message?: string } } = {};
  try {
    parsed = JSON.parse(body) as typeof parsed;
  } catch {
    // not ours: fall through
  }
  const code = parsed.error?.code ?? "";
  if (isErrorCode(code)) return new FerryError(code, parsed.error?.message ?? "");
  if (status === 401) return new FerryError("E_AUTH", `the controller refused the operator token: ${body.trim().slice(0, 500)}`);
  return new FerryError("E_CACHE_UPLOAD", `bundle upload: HTTP ${status}: ${body.trim().slice(0, 500)}`);
}

export interface StreamedImport {
  response: PublishBundleResponse;
  bytes: number;
  /** The rollout the import started (--rollout). */
  rollout?: Rollout;
  /** The local verification, when it ran. */
  verified?: VerifiedBundle;
}

/**
 * Sends the bundle file once to the controller, which verifies it with its own
 * keys and publishes it only if all of it is sound. With `trustedKeys`, the
 * same bytes are verified here too as they go, and the file's last chunk is
 * held back until that local check has passed: a bundle this side refuses can
 * never be complete at the controller, so it is never published.
 */
export async function streamBundle(options: {
  file: string;
  /** The bundle's bytes when they are not the file's own (a file cache tarball with its manifest). */
  body?: { size: number; chunks: () => AsyncIterable<Buffer> };
  url: URL;
  token: string;
  /** CA and client certificate for an https:// controller. */
  tls?: TlsMaterial;
  deploy: boolean;
  /** Absent: each host's own strategy. */
  mode: Mode | undefined;
  /** Start a rollout of the bundle's hosts with this policy instead of a plain deployment. */
  rollout?: RolloutPolicy;
  trustedKeys?: string[];
  /** Hears of each chunk as it goes out (and through the local verification). */
  onBytes?: (bytes: number) => void;
}): Promise<StreamedImport> {
  const size = options.body?.size ?? statSync(options.file).size;
  const url = new URL(options.url);
  url.searchParams.set("deploy", options.deploy ? "1" : "0");
  if (options.mode) url.searchParams.set("mode", options.mode);
  if (options.rollout) url.searchParams.set("rollout", JSON.stringify(RolloutPolicy.toJSON(options.rollout)));
  const request = send(url, "PUT", options.token, options.tls ?? {}, size);
  let responded = false;
  const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
    request.on("response", (message: IncomingMessage) => {
      responded = true;
      void readReply(message).then(resolve, reject);
    });
    request.on("error", reject);
  });
  answer.catch(() => undefined);
  /** Resolves when the request can take more, or will never need to. */
  const writable = (): Promise<void> =>
    new Promise((resolve) => {
      const done = (): void => {
        for (const event of ["drain", "response", "close"]) request.off(event, done);
        resolve();
      };
      for (const event of ["drain", "response", "close"]) request.on(event, done);
    });
  let held: Buffer | undefined;
  const hold = options.trustedKeys !== undefined;
  async function* source(): AsyncGenerator<Buffer> {
    const chunks = options.body?.chunks() ?? (createReadStream(options.file, { highWaterMark: CHUNK }) as AsyncIterable<Buffer>);
    for await (const chunk of chunks) {
      if (responded || request.destroyed) throw new FerryError("E_CACHE_UPLOAD", "the controller answered before the whole bundle was sent");
      if (hold) {
        if (held && !request.write(held)) await writable();
        held = chunk;
      } else if (!request.write(chunk)) await writable();
      options.onBytes?.(chunk.length);
      yield chunk;
    }
  }

  let verified: VerifiedBundle | undefined;
  try {
    if (options.trustedKeys) verified = await verifyBundle(source(), { trustedKeys: options.trustedKeys });
    else for await (const _chunk of source()) void _chunk;
  } catch (error) {
    // The controller's own answer, when it gave one first, says why it stopped taking the bundle.
    if (responded) {
      const reply = await answer.catch(() => undefined);
      if (reply && reply.status !== 200) throw controllerError(reply.status, reply.body);
    }
    request.destroy();
    throw error;
  }
  request.end(held);
  const reply = await answer.catch((error: Error) => {
    throw new FerryError("E_CACHE_UPLOAD", `uploading the bundle to ${url.origin}: ${error.message}`);
  });
  if (reply.status !== 200) throw controllerError(reply.status, reply.body);
  const body = JSON.parse(reply.body) as { response: unknown; bytes: number; rollout?: unknown };
  return {
    response: PublishBundleResponse.fromJSON(body.response),
    bytes: body.bytes,
    ...(body.rollout ? { rollout: Rollout.fromJSON(body.rollout) } : {}),
    ...(verified ? { verified } : {}),
  };
}

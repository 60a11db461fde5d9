import { Agent, request } from "undici";
import { parseHostPort } from "@ferry/core";

/**
 * Asks HOST:PORT for GET /healthz over HTTP/1.1. Undefined when it does not
 * answer HTTP/1.1 at all; `ferryHealthz` when it answers like the
 * controller's HTTP listener ("ok").
 */
export async function probeHttp1(address: string, timeoutMs = 2000): Promise<{ status: number; ferryHealthz: boolean } | undefined> {
  let target: { host: string; port: number };
  try {
    target = parseHostPort(address, "address");
  } catch {
    return undefined;
  }
  const host = target.host.includes(":") ? `[${target.host}]` : target.host;
  const dispatcher = new Agent({ connect: { timeout: timeoutMs }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  try {
    const response = await request(`http://${host}:${target.port}/healthz`, { dispatcher });
    const body = (await response.body.text()).slice(0, 100);
    return { status: response.statusCode, ferryHealthz: response.statusCode === 200 && body.trim() === "ok" };
  } catch {
    return undefined;
  } finally {
    await dispatcher.close().catch(() => undefined);
  }
}

// The dashboard in a real headless Chromium (Debian's chromium, driven by
// puppeteer-core; nothing is downloaded) against a real controller whose
// hosts are fake agents: log in through the form, see the fleet, watch a
// rollout progress on screen over Server-Sent Events (no reload), promote
// and abort it from its page, and read a host's failure output. Screenshots
// of each page go to $FERRY_SCREENSHOTS, or a temporary directory named in
// the test's output.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "puppeteer-core";
import { hashToken } from "@ferry/core";
import { RolloutPolicy } from "@ferry/protocol";
import { startTestController, type TestController } from "./controller-fixture.js";
import { mustCall } from "./operator-calls.js";
import { cachedPath, fakeAgent, until, type FakeAgent } from "./fake-fleet.js";

const CHROMIUM = process.env.FERRY_CHROMIUM ?? "/usr/bin/chromium";
const skip = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (apt-get install chromium, or run test/setup.sh as root)`;
const FAILURE_OUTPUT = 'starting nginx.service...\nnginx: [emerg] unknown directive "listn" in /etc/nginx/nginx.conf:12\nJob for nginx.service failed';
const WAIT_MS = 20_000;

describe("dashboard in Chromium", { skip }, () => {
  let t: TestController;
  let browser: Browser;
  let page: Page;
  let shots: string;
  const agents = new Map<string, FakeAgent>();
  let address: string;

  before(async () => {
    t = await startTestController();
    address = `127.0.0.1:${t.controller.grpcPort}`;
    for (const name of ["web1", "web2", "web3", "db1"]) {
      const token = `${name}-agent-token-0123456789abcdef0123`;
      await t.controller.store.addHost(name, hashToken(token), name.startsWith("web") ? ["web"] : ["db"], Date.now());
      agents.set(name, await fakeAgent(t.controller.httpPort, name, token, name === "db1" ? { failWith: FAILURE_OUTPUT } : { hold: true }));
    }
    shots = process.env.FERRY_SCREENSHOTS ?? mkdtempSync(join(tmpdir(), "ferry-dashboard-shots-"));
    mkdirSync(shots, { recursive: true });
    const { launch } = await import("puppeteer-core");
    browser = await launch({
      executablePath: CHROMIUM,
      headless: true,
      // Root in a container has no user namespaces for Chromium's sandbox.
      args: [...(process.getuid?.() === 0 ? ["--no-sandbox"] : []), "--disable-gpu", "--no-first-run"],
    });
    page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 800 });
    page.setDefaultTimeout(WAIT_MS);
  });

  after(async () => {
    await browser?.close();
    for (const agent of agents.values()) agent.close();
    await t?.stop();
  });

  const shot = (name: string): Promise<unknown> => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  // Page-side code as strings: the tests' TypeScript has no DOM library.
  const waitForState = (selector: string, state: string): Promise<unknown> =>
    page.waitForFunction(`document.querySelector(${JSON.stringify(selector)})?.getAttribute("data-state") === ${JSON.stringify(state)}`);
  const shownState = (selector: string): Promise<string | undefined> =>
    page.$eval(selector, (element) => element.getAttribute("data-state") ?? undefined).catch(() => undefined);

  test("log in, see the fleet, follow a rollout live, promote and abort it from its page, read a failure", async (context) => {
    context.diagnostic(`screenshots in ${shots}`);
    const db1 = await cachedPath(t.baseUrl, t.adminToken, "nixos-system-db1");
    await mustCall(address, "Deploy", { targets: [{ hostName: "db1", storePath: db1 }] }, t.adminToken);
    await until("db1 to report its failure", async () => ((await t.controller.store.getHost("db1"))?.lastErrorOutput ? true : undefined));

    // Not logged in: the fleet page leads to the login form.
    await page.goto(`${t.baseUrl}/ui/`);
    assert.equal(new URL(page.url()).pathname, "/ui/login");
    await shot("login");
    await page.type('input[name="token"]', t.adminToken);
    await Promise.all([page.waitForNavigation(), page.click("form button")]);
    assert.equal(new URL(page.url()).pathname, "/ui/");
    assert.ok(!page.url().includes(t.adminToken), "the token never appears in a URL");
    const cookies = await browser.cookies();
    assert.equal(cookies.length, 1);
    assert.equal(cookies[0]?.httpOnly, true);
    assert.equal(cookies[0]?.sameSite, "Strict");
    assert.notEqual(cookies[0]?.value, t.adminToken);

    // The fleet: every host, its link and the failing one's phase.
    await page.waitForFunction('document.querySelectorAll("tr[data-host]").length === 4');
    assert.equal(await page.$eval('tr[data-host="db1"] [data-phase]', (element) => element.textContent?.trim()), "failed");
    assert.match(await page.$eval('tr[data-host="web1"]', (element) => element.textContent ?? ""), /online/);
    await shot("fleet");

    // A rollout over the three web hosts: a canary, then one host per wave behind a manual gate.
    const targets = [];
    for (const hostName of ["web1", "web2", "web3"])
      targets.push({ hostName, storePath: await cachedPath(t.baseUrl, t.adminToken, `nixos-system-${hostName}`) });
    const { rollout } = await mustCall<{ rollout: { id: string } }>(
      address,
      "StartRollout",
      {
        targets,
        policy: RolloutPolicy.fromPartial({ canary: { value: 1, percent: false }, batch: { value: 1, percent: false }, maxUnavailable: 1, gate: true }),
        environment: "production",
      },
      t.adminToken,
    );
    await page.goto(`${t.baseUrl}/ui/rollouts/${rollout.id}`);
    // Marks this document: a reload would lose the mark, a live update keeps it.
    await page.evaluate('window.ferryMark = "same page"');
    await waitForState('tr[data-host="web1"] [data-state]', "activating");
    assert.equal(await shownState('tr[data-host="web2"] [data-state]'), "prefetched");
    await shot("rollout-canary");
    (agents.get("web1") as FakeAgent).release();
    await waitForState("#rollout-state [data-state]", "waiting-gate");
    assert.equal(await shownState('tr[data-host="web1"] [data-state]'), "confirmed");
    assert.equal(await page.evaluate("window.ferryMark"), "same page", "updated in place, not reloaded");
    assert.ok(Number(await page.$eval("body", (body) => body.getAttribute("data-updates"))) >= 1);
    await shot("rollout-gate");

    // Promote from the page: wave 2 starts on screen.
    await Promise.all([page.waitForNavigation(), page.click('#rollout-actions button[value="promote"]')]);
    await waitForState('tr[data-host="web2"] [data-state]', "activating");
    assert.match(await page.$eval(".flash", (element) => element.textContent ?? ""), /promote: done/);

    // Abort from the page, with a reason: the rollout ends aborted, and says so.
    await page.type('#rollout-actions input[name="reason"]', "nginx config typo");
    await Promise.all([page.waitForNavigation(), page.click('#rollout-actions button[value="abort"]')]);
    await until("the rollout to be aborted", async () => ((await t.controller.store.rollouts.getRollout(rollout.id)).state === "aborted" ? true : undefined));
    await waitForState("#rollout-state [data-state]", "aborted");
    assert.match(await page.$eval("#live", (element) => element.textContent ?? ""), /nginx config typo/);
    await shot("rollout-aborted");
    const audited = await t.controller.store.audit.list(10);
    assert.deepEqual(
      audited.filter((entry) => entry.action === "rollout.abort" || entry.action === "rollout.promote").map((entry) => [entry.action, entry.detail.via]),
      [
        ["rollout.abort", "dashboard"],
        ["rollout.promote", "dashboard"],
      ],
    );

    await page.goto(`${t.baseUrl}/ui/rollouts`);
    assert.match(await page.$eval(`tr[data-rollout="${rollout.id}"]`, (element) => element.textContent ?? ""), /aborted/);
    await shot("rollouts");

    // The failing host's page shows its error and the captured output.
    await page.goto(`${t.baseUrl}/ui/hosts/db1`);
    assert.equal(await page.$eval("#error-output", (element) => element.textContent), FAILURE_OUTPUT);
    assert.match(await page.$eval("#live", (element) => element.textContent ?? ""), /E_ACTIVATION_FAILED/);
    await shot("host-failed");

    await page.goto(`${t.baseUrl}/ui/audit`);
    assert.match(await page.$eval("#live", (element) => element.textContent ?? ""), /rollout\.abort/);
    await shot("audit");

    // Logging out ends the session: the fleet leads to the login again.
    await Promise.all([page.waitForNavigation(), page.click('form[action="/ui/logout"] button')]);
    await page.goto(`${t.baseUrl}/ui/`);
    assert.equal(new URL(page.url()).pathname, "/ui/login");
  });
});

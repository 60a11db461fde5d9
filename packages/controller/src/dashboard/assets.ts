/**
 * The dashboard's only script and style sheet, served by the controller
 * itself (the Content-Security-Policy allows nothing else): the page works
 * air-gapped and without a build step.
 */

/**
 * Live updates: the page names what it shows in <body data-live>; on each
 * "changed" message the page is fetched again and its #live part replaced,
 * so the view follows the fleet without polling and without a reload (forms
 * outside #live keep what was typed). A session that ended turns the fetch
 * into a redirect: then the whole page reloads, which leads to the login.
 */
export const LIVE_SCRIPT = `"use strict";
(() => {
  const topic = document.body.dataset.live;
  if (!topic || !window.EventSource) return;
  const source = new EventSource("/ui/events?topic=" + encodeURIComponent(topic));
  let loading = false;
  let again = false;
  async function refresh() {
    if (loading) { again = true; return; }
    loading = true;
    try {
      const response = await fetch(location.href, { credentials: "same-origin", cache: "no-store" });
      if (response.redirected || !response.ok) { location.reload(); return; }
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html").getElementById("live");
      const current = document.getElementById("live");
      if (!fresh || !current) { location.reload(); return; }
      current.replaceWith(document.importNode(fresh, true));
      document.body.dataset.updates = String(Number(document.body.dataset.updates || "0") + 1);
    } catch (error) {
      // The controller is restarting, or the link is down: the next message tries again.
    } finally {
      loading = false;
      if (again) { again = false; void refresh(); }
    }
  }
  source.addEventListener("changed", () => void refresh());
  // A change between this page's rendering and the stream's (re)opening sent no message: look once.
  source.addEventListener("open", () => void refresh());
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) setTimeout(() => location.reload(), 5000);
  });
  window.addEventListener("pagehide", () => source.close());
})();
`;

export const STYLE_SHEET = `
:root { color-scheme: light dark; --muted: #777; --bad: #c62828; --good: #2e7d32; --warn: #b26a00; }
body { font: 14px/1.45 system-ui, sans-serif; margin: 0; }
header { display: flex; gap: 1.2em; align-items: center; padding: .6em 1.2em; border-bottom: 1px solid #8884; }
header strong { font-size: 1.1em; }
header form { margin-left: auto; }
main { padding: 1em 1.2em; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .25em .6em; border-bottom: 1px solid #8883; vertical-align: top; }
th { font-weight: 600; }
code, pre { font: 12px/1.4 ui-monospace, monospace; }
pre { background: #8881; padding: .6em; overflow: auto; max-height: 30em; white-space: pre-wrap; }
.muted { color: var(--muted); }
.bad { color: var(--bad); font-weight: 600; }
.good { color: var(--good); }
.warn { color: var(--warn); }
.flash { padding: .5em .8em; border: 1px solid #8886; margin-bottom: 1em; }
.actions { display: flex; gap: .6em; align-items: center; margin: 1em 0; flex-wrap: wrap; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2em 1em; }
dt { font-weight: 600; }
dd { margin: 0; }
.login { max-width: 28em; margin: 4em auto; }
.login input[type=password] { width: 100%; box-sizing: border-box; padding: .4em; }
`;

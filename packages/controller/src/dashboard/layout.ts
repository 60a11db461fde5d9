import { html, type SafeHtml } from "./html.js";
import type { Session } from "./sessions.js";

export interface PageFrame {
  title: string;
  /** What the page follows over /ui/events ("fleet", "host:NAME", "rollouts", "rollout:ID"); none: a static page. */
  live?: string;
  session?: Session;
  /** Shows the audit link: only tokens that may read the audit trail. */
  canAudit?: boolean;
}

/** The frame of every page: the navigation, the logout button (a form, so it carries the session's form token) and the one script. */
export function layout(frame: PageFrame, content: SafeHtml): SafeHtml {
  const flash = frame.session?.flash ?? "";
  if (frame.session) frame.session.flash = "";
  return html`<html lang="en">
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      <title>${frame.title} · Ferry</title>
      <link rel="stylesheet" href="/ui/assets/style.css" />
      <script src="/ui/assets/live.js" defer></script>
    </head>
    <body data-live="${frame.live ?? ""}">
      <header>
        <strong>Ferry</strong>
        ${
          frame.session
            ? html`<a href="/ui/">Fleet</a><a href="/ui/rollouts">Rollouts</a>${frame.canAudit ? html`<a href="/ui/audit">Audit</a>` : ""}
                <form method="post" action="/ui/logout"><input type="hidden" name="csrf" value="${frame.session.csrf}" /><button>Log out</button></form>`
            : ""
        }
      </header>
      <main>${flash ? html`<p class="flash" role="status">${flash}</p>` : ""} ${content}</main>
    </body>
  </html>`;
}

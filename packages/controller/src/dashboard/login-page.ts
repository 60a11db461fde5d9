import { html, type SafeHtml } from "./html.js";

/** The token goes in a form body, never a URL: it stays out of history, logs and Referer headers. */
export function loginPage(error: string): SafeHtml {
  return html`<section class="login">
    <h1>Log in</h1>
    <p>
      Paste an operator token with the <code>read</code> scope (<code>ferry token create NAME --scope read</code>). Actions on rollouts need the
      <code>deploy</code> scope for their hosts.
    </p>
    ${error ? html`<p class="bad" role="alert">${error}</p>` : ""}
    <form method="post" action="/ui/login">
      <p><input type="password" name="token" autocomplete="off" required autofocus aria-label="Operator token" /></p>
      <p><button>Log in</button></p>
    </form>
  </section>`;
}

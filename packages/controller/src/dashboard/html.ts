/**
 * The dashboard's one way to build HTML: every value put into a template is
 * escaped unless it is itself the result of `html`, so a host name, an error
 * output or an audit reason coming from an agent or an operator can never
 * become markup.
 */
export class SafeHtml {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

export type HtmlValue = SafeHtml | string | number | boolean | null | undefined | readonly HtmlValue[];

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;", "`": "&#96;" };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"'`]/g, (char) => ESCAPES[char] as string);
}

function render(value: HtmlValue): string {
  if (value instanceof SafeHtml) return value.text;
  if (Array.isArray(value)) return value.map(render).join("");
  if (value === null || value === undefined || value === false) return "";
  return escapeHtml(String(value));
}

export function html(strings: TemplateStringsArray, ...values: HtmlValue[]): SafeHtml {
  let text = strings[0] as string;
  values.forEach((value, index) => {
    text += render(value) + (strings[index + 1] as string);
  });
  return new SafeHtml(text);
}

/** A path segment of a link (a host name, a rollout id), percent-encoded; `html` then escapes the rest. */
export function segment(value: string): string {
  return encodeURIComponent(value);
}

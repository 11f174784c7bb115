import { LitElement, css, html, type PropertyValues } from "lit";
import { createSendwerkClient, isProblem, ProblemType, type Problem, type SendwerkClient } from "@sendwerk/client";
import { format, lookup, translated, type Dictionary } from "./i18n.js";

/** FetchFunc is what the host page passes to route calls through its own backend. */
export type FetchFunc = (input: Request) => Promise<Response>;

/** A failed call, ready to show: one sentence, field errors, and how long to wait after a 429. */
export interface Failure {
  message: string;
  fields: Record<string, string>;
  retryAfter?: number;
  problem?: Problem;
}

/**
 * SendwerkElement is the base of every element: where the API is (`base-url`, `fetch`), the
 * language (`lang` on the element or an ancestor, else the document's), strings and a live
 * region for announcements. No API key in the browser: `base-url` normally points at the
 * host app's backend, which adds the key (see the README's proxy); `token` (a property,
 * never an attribute) is the direct mode for trusted consoles.
 */
export class SendwerkElement extends LitElement {
  static override properties = {
    baseUrl: { type: String, attribute: "base-url" },
    fetch: { attribute: false },
    token: { attribute: false },
    strings: { attribute: false },
    // `lang` is the native attribute; mirrored here so a change re-renders.
    locale: { type: String, attribute: "lang" },
    announcement: { state: true },
  };

  declare baseUrl: string;
  declare fetch: FetchFunc | undefined;
  declare token: string | (() => string | undefined | Promise<string | undefined>) | undefined;
  declare strings: Dictionary | undefined;
  declare locale: string | undefined;
  declare announcement: string;

  private cachedClient: SendwerkClient | undefined;

  constructor() {
    super();
    this.baseUrl = "";
    this.announcement = "";
  }

  static sharedStyles = css`
    :host {
      display: block;
      font-family: var(--sendwerk-font, system-ui, -apple-system, "Segoe UI", Roboto, sans-serif);
      font-size: var(--sendwerk-font-size, 1rem);
      line-height: 1.5;
      color: var(--sendwerk-color-text, #1f2328);
      --_gap: var(--sendwerk-spacing, 0.75rem);
      --_border: var(--sendwerk-color-border, #8c959f);
      --_muted: var(--sendwerk-color-muted, #57606a);
      --_primary: var(--sendwerk-color-primary, #0a58ca);
      --_primary-text: var(--sendwerk-color-primary-text, #ffffff);
      --_danger: var(--sendwerk-color-danger, #b42318);
      --_success: var(--sendwerk-color-success, #1a7f37);
      --_warning: var(--sendwerk-color-warning, #8a5a00);
      --_surface: var(--sendwerk-color-surface, #f6f8fa);
      --_radius: var(--sendwerk-radius, 6px);
      --_focus: var(--sendwerk-focus-ring, 0 0 0 3px rgba(10, 88, 202, 0.45));
    }
    [hidden] { display: none !important; }
    h2 { font-size: 1.25rem; margin: 0 0 var(--_gap); }
    h3 { font-size: 1.05rem; margin: var(--_gap) 0 calc(var(--_gap) / 2); }
    fieldset { border: 1px solid var(--_border); border-radius: var(--_radius); padding: var(--_gap); margin: 0 0 var(--_gap); }
    legend { font-weight: 600; padding: 0 0.25rem; }
    .field { display: flex; flex-direction: column; gap: 0.25rem; margin-bottom: var(--_gap); }
    .row { display: flex; flex-wrap: wrap; gap: var(--_gap); align-items: flex-start; }
    .row > .field { flex: 1 1 12rem; }
    label { font-weight: 600; }
    .check label, .radio label { font-weight: normal; }
    .hint { color: var(--_muted); font-size: 0.875em; margin: 0; }
    input[type="text"], input[type="email"], input[type="number"], input[type="password"], input[type="search"], select {
      font: inherit; color: inherit; background: var(--sendwerk-color-input, #fff);
      border: 1px solid var(--_border); border-radius: var(--_radius); padding: 0.4rem 0.5rem; min-width: 0;
      box-sizing: border-box; min-height: 2.4rem;
    }
    input[aria-invalid="true"] { border-color: var(--_danger); }
    button {
      font: inherit; cursor: pointer; border-radius: var(--_radius); padding: 0.4rem 0.9rem; box-sizing: border-box; min-height: 2.4rem;
      border: 1px solid var(--_border); background: var(--sendwerk-color-button, #fff); color: inherit;
    }
    button.primary { background: var(--_primary); border-color: var(--_primary); color: var(--_primary-text); }
    button:disabled { cursor: not-allowed; opacity: 0.6; }
    button.link { border: none; background: none; color: var(--_primary); text-decoration: underline; padding: 0; min-height: 0; }
    :is(button, input, select, a, [tabindex]):focus-visible { outline: 2px solid var(--_primary); outline-offset: 1px; box-shadow: var(--_focus); }
    .error { color: var(--_danger); margin: 0; }
    .ok { color: var(--_success); }
    .warn { color: var(--_warning); }
    .actions { display: flex; flex-wrap: wrap; gap: var(--_gap); align-items: center; margin: var(--_gap) 0; }
    .banner { border-radius: var(--_radius); padding: 0.5rem 0.75rem; margin: var(--_gap) 0; border: 1px solid var(--_border); background: var(--_surface); }
    .banner.error { border-color: var(--_danger); }
    .banner.ok { border-color: var(--_success); }
    .banner.warn { border-color: var(--_warning); }
    .badge { display: inline-block; border-radius: 999px; padding: 0 0.5rem; font-size: 0.85em; border: 1px solid currentColor; white-space: nowrap; }
    table { border-collapse: collapse; width: 100%; }
    th, td { text-align: left; vertical-align: top; padding: 0.4rem 0.5rem; border-bottom: 1px solid var(--_border); }
    th { font-weight: 600; }
    code, pre { font-family: var(--sendwerk-font-mono, ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace); font-size: 0.875em; }
    code.value { word-break: break-all; }
    pre { background: var(--_surface); border: 1px solid var(--_border); border-radius: var(--_radius); padding: var(--_gap); overflow-x: auto; white-space: pre; }
    .sr-only { position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
  `;

  /** t translates a key in this element's language. */
  t(key: string, params?: Record<string, string | number>): string {
    return format(lookup(this.language, key, this.strings), params);
  }

  /**
   * explain says a failure code's sentence in this element's language when a translation
   * exists, else the server's own sentence (English, with host, port and reply).
   */
  explain(code: string | undefined, serverMessage: string, params?: Record<string, string | number>): string {
    const own = code ? translated(this.language, `code.${code}`, this.strings) : undefined;
    return own ? format(own, params) : serverMessage;
  }

  /** language is the element's own `lang`, else the nearest ancestor's, else the document's. */
  get language(): string {
    if (this.locale) return this.locale;
    const host = this.closest("[lang]") as HTMLElement | null;
    return host?.lang || document.documentElement.lang || navigator.language || "en";
  }

  /** client is the typed API client; it is rebuilt when base-url, fetch or token change. */
  get api(): SendwerkClient {
    if (!this.cachedClient) {
      const fetchFunc = this.fetch ?? ((req: Request) => globalThis.fetch(req));
      this.cachedClient = createSendwerkClient({ baseUrl: this.baseUrl.replace(/\/$/, ""), fetch: fetchFunc, token: this.token });
    }
    return this.cachedClient;
  }

  protected override willUpdate(changed: PropertyValues): void {
    if (changed.has("baseUrl") || changed.has("fetch") || changed.has("token")) {
      this.cachedClient = undefined;
    }
  }

  override connectedCallback(): void {
    super.connectedCallback();
    void this.reload();
  }

  protected override updated(changed: PropertyValues): void {
    // A new base-url, fetch or token after the first render: load again from the new place.
    const moved = ["baseUrl", "fetch", "token"].some((k) => changed.has(k) && changed.get(k) !== undefined);
    if (moved && this.hasUpdated) void this.reload();
  }

  /** reload fetches what the element shows; each element implements it. */
  async reload(): Promise<void> {}

  /** announce speaks a sentence through the element's live region. */
  announce(message: string): void {
    // Clearing first makes screen readers repeat an identical sentence.
    this.announcement = "";
    requestAnimationFrame(() => (this.announcement = message));
  }

  /** failure turns an openapi-fetch error (or a thrown network error) into what a form shows. */
  failure(error: unknown, response?: Response): Failure {
    if (!response) return { message: this.t("common.network"), fields: {} };
    const retryAfter = Number(response.headers.get("Retry-After") ?? "") || undefined;
    if (!isProblem(error)) {
      return { message: this.t("common.error", { detail: `${response.status} ${response.statusText}` }), fields: {}, retryAfter };
    }
    const fields: Record<string, string> = {};
    for (const e of error.errors ?? []) fields[e.field] = e.message;
    switch (error.type) {
      case ProblemType.Validation:
        return { message: this.t("common.fixFields"), fields, problem: error };
      case ProblemType.Forbidden:
      case ProblemType.Unauthorized:
        return { message: this.t("common.forbidden"), fields, problem: error };
      case ProblemType.RateLimited:
        return { message: this.t("common.rateLimited", { seconds: retryAfter ?? 1 }), fields, retryAfter, problem: error };
      default:
        return { message: error.detail ?? error.title, fields, retryAfter, problem: error };
    }
  }

  /** call runs an API call and turns thrown network errors into a missing response. */
  async call<R extends { response: Response }>(run: () => Promise<R>): Promise<R | { data?: undefined; error: unknown; response?: undefined }> {
    try {
      return await run();
    } catch (err) {
      return { error: err };
    }
  }

  /** dateTime formats an ISO time in the element's language. */
  dateTime(iso: string | null | undefined): string {
    if (!iso) return "";
    return new Intl.DateTimeFormat(this.language, { dateStyle: "medium", timeStyle: "short" }).format(new Date(iso));
  }

  /** relativeTime says "in 3 minutes" / "vor 2 Stunden". */
  relativeTime(iso: string | null | undefined): string {
    if (!iso) return "";
    const seconds = Math.round((new Date(iso).getTime() - Date.now()) / 1000);
    const rtf = new Intl.RelativeTimeFormat(this.language, { numeric: "auto" });
    const abs = Math.abs(seconds);
    if (abs < 60) return rtf.format(seconds, "second");
    if (abs < 3600) return rtf.format(Math.round(seconds / 60), "minute");
    if (abs < 86400) return rtf.format(Math.round(seconds / 3600), "hour");
    return rtf.format(Math.round(seconds / 86400), "day");
  }

  /** number formats an integer in the element's language. */
  number(n: number): string {
    return new Intl.NumberFormat(this.language).format(n);
  }

  /** copy writes text to the clipboard exactly and announces it. */
  async copy(text: string, what: string): Promise<void> {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // Older browsers or an insecure context: a selected textarea and execCommand.
      const area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.append(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    this.announce(`${this.t("common.copied")}: ${what}`);
  }

  /** liveRegion renders the element's polite live region; put it once in render(). */
  liveRegion() {
    return html`<div class="sr-only" role="status" aria-live="polite" aria-atomic="true" part="live">${this.announcement}</div>`;
  }

  /** emit dispatches a composed, bubbling event the host page can listen to. */
  emit<T>(name: string, detail: T): void {
    this.dispatchEvent(new CustomEvent(name, { detail, bubbles: true, composed: true }));
  }
}

import { css, html, nothing } from "lit";
import type { Message, MessageDetail, MessageEvent, MessageStatus } from "@sendwerk/client";
import { SendwerkElement } from "./base.js";

const statuses: MessageStatus[] = ["queued", "sending", "deferred", "delivered", "failed", "cancelled"];

/**
 * `<sendwerk-message-log>` lists the tenant's messages, newest first, with a status filter, a
 * search by recipient and cursor paging (`page-size`, default 25), and opens a timeline per
 * message: attempts with the servers' replies, deferrals with the next retry, the outcome.
 */
export class SendwerkMessageLog extends SendwerkElement {
  static override properties = {
    ...SendwerkElement.properties,
    pageSize: { type: Number, attribute: "page-size" },
    status: { state: true },
    recipient: { state: true },
    items: { state: true },
    cursors: { state: true },
    nextCursor: { state: true },
    detail: { state: true },
    busy: { state: true },
    error: { state: true },
  };

  declare pageSize: number;
  declare status: MessageStatus | "";
  declare recipient: string;
  declare items: Message[];
  declare cursors: string[];
  declare nextCursor: string | undefined;
  declare detail: MessageDetail | undefined;
  declare busy: boolean;
  declare error: string;
  private lastRowId = "";

  constructor() {
    super();
    this.pageSize = 25;
    this.status = "";
    this.recipient = "";
    this.items = [];
    this.cursors = [];
    this.busy = false;
    this.error = "";
  }

  static override styles = [
    SendwerkElement.sharedStyles,
    css`
      .filters { display: flex; flex-wrap: wrap; gap: var(--_gap); align-items: flex-end; }
      .filters .field { margin: 0; }
      .st-delivered { color: var(--_success); }
      .st-failed, .st-cancelled { color: var(--_danger); }
      .st-deferred { color: var(--_warning); }
      .st-queued, .st-sending { color: var(--_muted); }
      td button.link { text-align: left; }
      ol.timeline { list-style: none; padding: 0; margin: var(--_gap) 0; border-left: 2px solid var(--_border); }
      ol.timeline li { position: relative; padding: 0 0 var(--_gap) 1rem; }
      ol.timeline li::before { content: ""; position: absolute; left: -0.4rem; top: 0.45rem; width: 0.7rem; height: 0.7rem; border-radius: 50%; background: var(--_border); }
      ol.timeline li[data-type="delivered"]::before { background: var(--_success); }
      ol.timeline li[data-type="failed"]::before { background: var(--_danger); }
      ol.timeline li[data-type="deferred"]::before { background: var(--_warning); }
      dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.25rem 1rem; margin: 0; }
      dt { font-weight: 600; }
      dd { margin: 0; word-break: break-word; }
      .event-data { font-size: 0.875em; color: var(--_muted); margin: 0.25rem 0 0; }
    `,
  ];

  /** reload shows the first page with the current filters. */
  override reload(): Promise<void> {
    this.detail = undefined;
    return this.loadPage([]);
  }

  // loadPage loads the page after the last cursor of the stack (the first page for []).
  private async loadPage(cursors: string[]): Promise<void> {
    this.busy = true;
    this.error = "";
    const cursor = cursors[cursors.length - 1];
    const query = {
      limit: this.pageSize,
      ...(cursor ? { cursor } : {}),
      ...(this.status ? { status: this.status } : {}),
      ...(this.recipient.trim() ? { recipient: this.recipient.trim() } : {}),
    };
    const res = await this.call(() => this.api.GET("/v1/messages", { params: { query } }));
    this.busy = false;
    if (!res.data) {
      const f = this.failure(res.error, res.response);
      this.error = [f.message, ...Object.entries(f.fields).map(([k, v]) => `${k}: ${v}`)].join(" ");
      this.announce(this.error);
      return;
    }
    this.items = res.data.items;
    this.nextCursor = res.data.next_cursor;
    this.cursors = cursors;
    this.announce(`${this.t("log.page", { n: cursors.length + 1 })}: ${this.t("log.count", { count: this.number(this.items.length) })}`);
  }

  /** search applies the filters and starts from the first page. */
  search(): Promise<void> {
    return this.loadPage([]);
  }

  private next = () => this.nextCursor && this.loadPage([...this.cursors, this.nextCursor]);
  private previous = () => this.loadPage(this.cursors.slice(0, -1));

  /** open shows one message's timeline. */
  async open(id: string): Promise<void> {
    this.busy = true;
    this.lastRowId = id;
    const res = await this.call(() => this.api.GET("/v1/messages/{message_id}", { params: { path: { message_id: id } } }));
    this.busy = false;
    if (!res.data) {
      this.error = this.failure(res.error, res.response).message;
      return;
    }
    this.detail = res.data;
    await this.updateComplete;
    (this.renderRoot.querySelector("#detail-title") as HTMLElement | null)?.focus();
  }

  private close = async () => {
    this.detail = undefined;
    await this.updateComplete;
    (this.renderRoot.querySelector(`[data-message-id="${this.lastRowId}"]`) as HTMLElement | null)?.focus();
  };

  private renderFilters() {
    return html`<form class="filters" part="filters" role="search" @submit=${(e: Event) => {
        e.preventDefault();
        void this.search();
      }}>
      <div class="field" part="field">
        <label for="status" part="label">${this.t("log.status")}</label>
        <select id="status" part="input" @change=${(e: Event) => {
          this.status = (e.target as HTMLSelectElement).value as MessageStatus | "";
          void this.search();
        }}>
          <option value="" ?selected=${this.status === ""}>${this.t("log.status.all")}</option>
          ${statuses.map((s) => html`<option value=${s} ?selected=${this.status === s}>${this.t(`log.status.${s}`)}</option>`)}
        </select>
      </div>
      <div class="field" part="field">
        <label for="recipient" part="label">${this.t("log.recipient")}</label>
        <input id="recipient" type="search" part="input" autocomplete="off" placeholder=${this.t("log.recipientHint")} .value=${this.recipient}
          @input=${(e: Event) => (this.recipient = (e.target as HTMLInputElement).value)} />
      </div>
      <div class="actions"><button type="submit" part="button">${this.t("log.search")}</button></div>
    </form>`;
  }

  private renderList() {
    return html`${this.renderFilters()}
      ${this.error ? html`<p class="banner error" part="error">${this.error}</p>` : nothing}
      <table part="table" aria-busy=${this.busy ? "true" : "false"}>
        <caption class="sr-only">${this.t("log.title")} — ${this.t("log.page", { n: this.cursors.length + 1 })}</caption>
        <thead><tr>
          <th scope="col">${this.t("log.col.date")}</th><th scope="col">${this.t("log.col.to")}</th>
          <th scope="col">${this.t("log.col.subject")}</th><th scope="col">${this.t("log.col.status")}</th>
          <th scope="col">${this.t("log.col.attempts")}</th>
        </tr></thead>
        <tbody>
          ${this.items.length === 0 && !this.busy ? html`<tr><td colspan="5">${this.t("log.empty")}</td></tr>` : nothing}
          ${this.items.map(
            (m) => html`<tr part="row" data-id=${m.id}>
              <td>${this.dateTime(m.created_at)}</td>
              <td>${m.recipients.join(", ")}</td>
              <td><button type="button" class="link" part="open-message" data-message-id=${m.id}
                aria-label=${this.t("log.details", { subject: m.subject || this.t("log.noSubject") })}
                @click=${() => this.open(m.id)}>${m.subject || this.t("log.noSubject")}</button></td>
              <td><span class="badge st-${m.status}" part="badge">${this.t(`log.status.${m.status}`)}</span></td>
              <td>${this.number(m.attempts)}</td>
            </tr>`,
          )}
        </tbody>
      </table>
      <nav class="actions" part="pager" aria-label=${this.t("log.title")}>
        <button type="button" id="previous" part="button" ?disabled=${this.busy || this.cursors.length === 0} @click=${this.previous}>${this.t("log.previous")}</button>
        <span part="page">${this.t("log.page", { n: this.cursors.length + 1 })}</span>
        <button type="button" id="next" part="button" ?disabled=${this.busy || !this.nextCursor} @click=${this.next}>${this.t("log.next")}</button>
      </nav>`;
  }

  private eventData(ev: MessageEvent) {
    const data = ev.data as Record<string, unknown>;
    const parts: string[] = [];
    const reply = data.reply as { code?: number; enhanced_code?: string; text?: string } | undefined;
    if (reply?.code) parts.push(`${reply.code}${reply.enhanced_code ? " " + reply.enhanced_code : ""} ${reply.text ?? ""}`.trim());
    for (const key of ["host", "outcome", "error", "reason", "queue_id"]) {
      if (typeof data[key] === "string" && data[key]) parts.push(`${key}: ${data[key] as string}`);
    }
    if (typeof data.next_attempt_at === "string") parts.push(this.t("log.nextAttempt", { when: this.dateTime(data.next_attempt_at) }));
    return parts.length ? html`<p class="event-data">${parts.join(" · ")}</p>` : nothing;
  }

  private renderDetail(m: MessageDetail) {
    return html`<section part="detail" aria-labelledby="detail-title">
      <div class="actions"><button type="button" id="back" part="button" @click=${this.close}>${this.t("log.back")}</button></div>
      <h3 id="detail-title" tabindex="-1">${m.subject || this.t("log.noSubject")}</h3>
      <dl part="summary">
        <dt>${this.t("log.from")}</dt><dd>${m.from.name ? `${m.from.name} <${m.from.email}>` : m.from.email}</dd>
        <dt>${this.t("log.col.to")}</dt><dd>${m.recipients.join(", ")}</dd>
        <dt>${this.t("log.col.status")}</dt><dd><span class="badge st-${m.status}">${this.t(`log.status.${m.status}`)}</span></dd>
        ${m.status_reason ? html`<dt>${this.t("log.reason")}</dt><dd>${m.status_reason}</dd>` : nothing}
        ${m.next_attempt_at ? html`<dt>${this.t("log.nextAttempt", { when: "" }).trim()}</dt><dd>${this.dateTime(m.next_attempt_at)}</dd>` : nothing}
        <dt>${this.t("log.messageId")}</dt><dd><code>${m.message_id}</code></dd>
      </dl>
      <h4>${this.t("log.timeline")}</h4>
      <ol class="timeline" part="timeline">
        ${m.events.map(
          (ev) => html`<li part="event" data-type=${ev.type}>
            <strong>${this.t(`log.event.${ev.type}`)}</strong> · <time datetime=${ev.at}>${this.dateTime(ev.at)}</time>
            ${this.eventData(ev)}
          </li>`,
        )}
      </ol>
    </section>`;
  }

  override render() {
    return html`<section part="container">
      <h2 part="title">${this.t("log.title")}</h2>
      ${this.detail ? this.renderDetail(this.detail) : this.renderList()} ${this.liveRegion()}
    </section>`;
  }
}

import { css, html, nothing } from "lit";
import type { Domain, DomainRecord, DomainRecords } from "@sendwerk/client";
import { SendwerkElement } from "./base.js";

type Banner = { kind: "ok" | "error" | "warn" | "info"; text: string } | undefined;

/**
 * `<sendwerk-domain-setup>` adds a sender domain and shows the records to publish (table with
 * relative and full host names and exact copy buttons, or a zone-file view with TXT values split
 * into 255-byte strings), each record's status with the check's sentence, "Check now" within
 * the server's rate limit, and the grace clock of an at-risk domain. `domain-id` shows one
 * domain only. Events: `sendwerk-domain-added`, `sendwerk-domain-checked` (detail: the domain).
 */
export class SendwerkDomainSetup extends SendwerkElement {
  static override properties = {
    ...SendwerkElement.properties,
    domainId: { type: String, attribute: "domain-id" },
    domains: { state: true },
    selected: { state: true },
    records: { state: true },
    zone: { state: true },
    view: { state: true },
    busy: { state: true },
    banner: { state: true },
    addError: { state: true },
    newDomain: { state: true },
    waitUntil: { state: true },
    now: { state: true },
  };

  declare domainId: string;
  declare domains: Domain[];
  declare selected: Domain | undefined;
  declare records: DomainRecords | undefined;
  declare zone: string;
  declare view: "table" | "zone";
  declare busy: "" | "load" | "add" | "check";
  declare banner: Banner;
  declare addError: string;
  declare newDomain: string;
  declare waitUntil: number;
  declare now: number;
  private timer: ReturnType<typeof setInterval> | undefined;
  private firstCheckTimer: ReturnType<typeof setTimeout> | undefined;
  private recordsSeq = 0;

  constructor() {
    super();
    this.domainId = "";
    this.domains = [];
    this.zone = "";
    this.view = "table";
    this.busy = "";
    this.addError = "";
    this.newDomain = "";
    this.waitUntil = 0;
    this.now = Date.now();
  }

  static override styles = [
    SendwerkElement.sharedStyles,
    css`
      .add { display: flex; flex-wrap: wrap; gap: var(--_gap); align-items: flex-end; }
      .add .field { flex: 1 1 16rem; margin: 0; }
      .status-pending { color: var(--_muted); }
      .status-verified, .rec-pass { color: var(--_success); }
      .status-at_risk, .rec-temperror { color: var(--_warning); }
      .status-revoked, .rec-fail { color: var(--_danger); }
      .rec-pending { color: var(--_muted); }
      .copyable { display: flex; gap: 0.5rem; align-items: flex-start; }
      .copyable code { flex: 1; }
      .fqdn { margin-top: 0.25rem; color: var(--_muted); font-size: 0.875em; }
      .record-message { font-size: 0.875em; margin: 0.25rem 0 0; }
      .toggle { display: inline-flex; gap: 0; }
      .toggle button[aria-pressed="true"] { background: var(--_primary); color: var(--_primary-text); border-color: var(--_primary); }
      table { table-layout: fixed; min-width: 40rem; }
      col.c-type { width: 7.5rem; }
      col.c-host { width: 28%; }
      col.c-ttl { width: 4.5rem; }
      col.c-status { width: 24%; }
      td code { word-break: break-all; }
      .rec-advice { color: var(--_warning); }
      button.copy { padding: 0.1rem 0.5rem; font-size: 0.85em; min-height: 0; }
      .table-wrap { overflow-x: auto; }
    `,
  ];

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.stopTimer();
    clearTimeout(this.firstCheckTimer);
  }

  /** reload lists the domains (or reads `domain-id`) and shows the first. */
  override async reload(): Promise<void> {
    this.busy = "load";
    if (this.domainId) {
      const id = this.domainId;
      const res = await this.call(() => this.api.GET("/v1/domains/{domain_id}", { params: { path: { domain_id: id } } }));
      this.busy = "";
      if (!res.data) return this.fail(res.error, res.response);
      this.domains = [res.data];
    } else {
      const res = await this.call(() => this.api.GET("/v1/domains", { params: { query: { limit: 100 } } }));
      this.busy = "";
      if (!res.data) return this.fail(res.error, res.response);
      this.domains = res.data.items;
    }
    const keep = this.selected && this.domains.find((d) => d.id === this.selected!.id);
    await this.select(keep ?? this.domains[0]);
  }

  private fail(error: unknown, response?: Response): void {
    const f = this.failure(error, response);
    this.banner = { kind: "error", text: f.message };
    this.announce(f.message);
  }

  private async select(domain: Domain | undefined): Promise<void> {
    this.selected = domain;
    this.records = undefined;
    this.zone = "";
    if (!domain) return;
    await this.loadRecords(domain.id);
    this.awaitFirstCheck(domain, 10);
  }

  // awaitFirstCheck refreshes a new domain until its first scheduled check (seconds after it
  // was added) has run, so the records' status appears without a reload.
  private awaitFirstCheck(domain: Domain, tries: number): void {
    clearTimeout(this.firstCheckTimer);
    if (domain.last_checked_at || tries <= 0) return;
    this.firstCheckTimer = setTimeout(async () => {
      if (this.selected?.id !== domain.id || !this.isConnected) return;
      const res = await this.call(() => this.api.GET("/v1/domains/{domain_id}", { params: { path: { domain_id: domain.id } } }));
      if (!res.data || this.selected?.id !== domain.id || this.selected.last_checked_at) return;
      if (res.data.last_checked_at) {
        await this.loadRecords(domain.id);
        if (this.selected?.id !== domain.id || this.selected.last_checked_at) return;
        this.selected = res.data;
        this.domains = this.domains.map((x) => (x.id === domain.id ? res.data! : x));
      } else this.awaitFirstCheck(domain, tries - 1);
    }, 4000);
  }

  private async loadRecords(id: string): Promise<void> {
    const seq = ++this.recordsSeq; // only the latest load is shown
    const [json, zone] = await Promise.all([
      this.call(() => this.api.GET("/v1/domains/{domain_id}/records", { params: { path: { domain_id: id } } })),
      this.call(() => this.api.GET("/v1/domains/{domain_id}/records", { params: { path: { domain_id: id }, query: { format: "zone" } }, parseAs: "text" })),
    ]);
    if (seq !== this.recordsSeq) return;
    if (!json.data) return this.fail(json.error, json.response);
    this.records = json.data as DomainRecords;
    this.zone = typeof zone.data === "string" ? zone.data : "";
  }

  /** add creates a domain from the form. */
  async add(): Promise<void> {
    const name = this.newDomain.trim();
    this.addError = "";
    this.busy = "add";
    const res = await this.call(() => this.api.POST("/v1/domains", { body: { domain: name } }));
    this.busy = "";
    if (!res.data) {
      const f = this.failure(res.error, res.response);
      this.addError = f.fields.domain ?? f.problem?.detail ?? f.message;
      this.announce(this.addError);
      await this.updateComplete;
      (this.renderRoot.querySelector("#new-domain") as HTMLElement | null)?.focus();
      return;
    }
    this.newDomain = "";
    this.domains = [...this.domains, res.data];
    await this.select(res.data);
    this.announce(`${res.data.domain_unicode}: ${this.t(`domains.status.${res.data.status}`)}`);
    this.emit("sendwerk-domain-added", res.data);
  }

  /** check runs the DNS checks now, or says when the rate limit lets it. */
  async check(): Promise<void> {
    const d = this.selected;
    if (!d || this.waitSeconds > 0) return;
    this.busy = "check";
    this.banner = { kind: "info", text: this.t("domains.checking") };
    this.announce(this.t("domains.checking"));
    const res = await this.call(() => this.api.POST("/v1/domains/{domain_id}/check", { params: { path: { domain_id: d.id } } }));
    this.busy = "";
    if (!res.data) {
      const f = this.failure(res.error, res.response);
      if (f.retryAfter) {
        this.wait(f.retryAfter);
        this.banner = { kind: "warn", text: this.t("domains.nextCheckIn", { seconds: f.retryAfter }) };
        this.announce(this.banner.text);
        return;
      }
      return this.fail(res.error, res.response);
    }
    const domain = res.data.domain;
    await this.loadRecords(domain.id); // status and records change together
    this.domains = this.domains.map((x) => (x.id === domain.id ? domain : x));
    this.selected = domain;
    const text = this.t("domains.checkDone", { status: this.t(`domains.status.${domain.status}`) });
    this.banner = { kind: domain.status === "verified" ? "ok" : domain.status === "pending" ? "info" : "warn", text };
    this.announce(text);
    this.emit("sendwerk-domain-checked", domain);
  }

  private get waitSeconds(): number {
    return Math.max(0, Math.ceil((this.waitUntil - this.now) / 1000));
  }

  private wait(seconds: number): void {
    this.waitUntil = Date.now() + seconds * 1000;
    this.now = Date.now();
    this.stopTimer();
    this.timer = setInterval(() => {
      this.now = Date.now();
      if (this.waitSeconds === 0) {
        this.stopTimer();
        if (this.banner?.kind === "warn") this.banner = undefined;
      }
    }, 250);
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private copyButton(text: string, what: string) {
    return html`<button type="button" class="copy" part="button copy-button" data-copy=${text}
      aria-label=${this.t("common.copyLabel", { what })} @click=${() => this.copy(text, what)}>${this.t("common.copy")}</button>`;
  }

  private renderAdd() {
    if (this.domainId) return nothing;
    return html`<form class="add" part="add-form" novalidate @submit=${(e: Event) => {
        e.preventDefault();
        void this.add();
      }}>
      <div class="field" part="field">
        <label for="new-domain" part="label">${this.t("domains.addLabel")}</label>
        <input id="new-domain" type="text" part="input" autocomplete="off" spellcheck="false" .value=${this.newDomain}
          aria-invalid=${this.addError ? "true" : "false"} aria-describedby="new-domain-hint ${this.addError ? "new-domain-error" : ""}"
          @input=${(e: Event) => (this.newDomain = (e.target as HTMLInputElement).value)} />
        <p class="hint" id="new-domain-hint">${this.t("domains.addHint")}</p>
        ${this.addError ? html`<p class="error" id="new-domain-error" part="error">${this.addError}</p>` : nothing}
      </div>
      <div class="actions"><button type="submit" class="primary" part="button button-primary" ?disabled=${this.busy === "add" || !this.newDomain.trim()}>
        ${this.busy === "add" ? this.t("domains.adding") : this.t("domains.add")}
      </button></div>
    </form>`;
  }

  private renderPicker() {
    if (this.domainId || this.domains.length < 2) return nothing;
    return html`<div class="field" part="field">
      <label for="domain-select" part="label">${this.t("domains.select")}</label>
      <select id="domain-select" part="input" @change=${(e: Event) => this.select(this.domains.find((d) => d.id === (e.target as HTMLSelectElement).value))}>
        ${this.domains.map((d) => html`<option value=${d.id} ?selected=${d.id === this.selected?.id}>${d.domain_unicode}</option>`)}
      </select>
    </div>`;
  }

  private renderStatus(d: Domain) {
    const status = this.t(`domains.status.${d.status}`);
    return html`<p part="status" data-status=${d.status}>
        <span class="badge status-${d.status}" part="badge">${this.t("domains.statusLine", { status })}</span>
      </p>
      ${d.status === "at_risk" && d.revokes_at
        ? html`<p class="banner warn" part="grace-clock" role="note">
            ${this.t("domains.atRisk", { when: this.dateTime(d.revokes_at) })} (${this.relativeTime(d.revokes_at)})
          </p>`
        : nothing}
      ${d.status === "revoked" ? html`<p class="banner error" part="revoked" role="note">${this.t("domains.revoked")}</p>` : nothing}
      ${d.status === "verified" && d.verified_at ? html`<p class="hint">${this.t("domains.verifiedSince", { when: this.dateTime(d.verified_at) })}</p>` : nothing}
      <p class="hint">
        ${d.last_checked_at
          ? this.t("domains.lastChecked", { when: this.relativeTime(d.last_checked_at), next: this.relativeTime(d.next_check_at) })
          : this.t("domains.neverChecked")}
      </p>`;
  }

  private renderRecord(r: DomainRecord) {
    const purpose = this.t(`domains.purpose.${r.purpose}`);
    return html`<tr part="record" data-purpose=${r.purpose} data-status=${r.status}>
      <td><strong>${r.type}</strong><br /><span class="hint">${purpose} · ${this.t(`domains.requirement.${r.requirement}`)}</span></td>
      <td>
        <div class="copyable"><code part="host">${r.host}</code>${this.copyButton(r.host, `${purpose} ${this.t("domains.hostRelative")}`)}</div>
        <div class="copyable fqdn"><code part="fqdn">${r.fqdn}</code>${this.copyButton(r.fqdn, `${purpose} ${this.t("domains.hostFqdn")}`)}</div>
      </td>
      <td class="value"><div class="copyable"><code class="value" part="value">${r.value}</code>${this.copyButton(r.value, `${purpose} ${this.t("domains.col.value")}`)}</div></td>
      <td>${this.number(r.ttl)}</td>
      <td>
        <span class="badge ${r.requirement === "recommended" && r.status === "fail" ? "rec-advice" : `rec-${r.status}`}" part="badge record-status">${this.t(`domains.recordStatus.${r.status}`)}</span>
        ${r.message ? html`<p class="record-message" part="record-message">${r.message}</p>` : nothing}
      </td>
    </tr>`;
  }

  private renderRecords() {
    const recs = this.records;
    if (!recs) return nothing;
    return html`<section part="records" aria-labelledby="records-title">
      <h3 id="records-title">${this.t("domains.records")}</h3>
      <p class="hint">${this.t("domains.recordsHint")}</p>
      <div class="toggle" role="group" aria-label=${this.t("domains.records")}>
        <button type="button" part="button" aria-pressed=${this.view === "table" ? "true" : "false"} @click=${() => (this.view = "table")}>${this.t("domains.tableView")}</button>
        <button type="button" part="button" aria-pressed=${this.view === "zone" ? "true" : "false"} @click=${() => (this.view = "zone")}>${this.t("domains.zoneView")}</button>
      </div>
      ${this.view === "table"
        ? html`<div class="table-wrap"><table part="table">
            <colgroup><col class="c-type" /><col class="c-host" /><col class="c-value" /><col class="c-ttl" /><col class="c-status" /></colgroup>
            <thead><tr>
              <th scope="col">${this.t("domains.col.type")}</th><th scope="col">${this.t("domains.col.host")}</th>
              <th scope="col">${this.t("domains.col.value")}</th><th scope="col">${this.t("domains.col.ttl")}</th>
              <th scope="col">${this.t("domains.col.status")}</th>
            </tr></thead>
            <tbody>${recs.records.map((r) => this.renderRecord(r))}</tbody>
          </table></div>`
        : html`<p class="hint">${this.t("domains.zoneHint")}</p>
            <pre part="zone" tabindex="0" aria-label=${this.t("domains.zoneView")}>${this.zone}</pre>
            <div class="actions">${this.copyButton(this.zone, this.t("domains.zoneView"))}</div>`}
    </section>`;
  }

  override render() {
    const d = this.selected;
    const wait = this.waitSeconds;
    return html`<section part="container" aria-busy=${this.busy ? "true" : "false"}>
      <h2 part="title">${this.t("domains.title")}</h2>
      ${this.renderAdd()} ${this.renderPicker()}
      ${this.busy === "load" ? html`<p class="hint">${this.t("common.loading")}</p>` : nothing}
      ${!d && this.busy !== "load" ? html`<p class="hint">${this.t("domains.none")}</p>` : nothing}
      ${d
        ? html`<h3 part="domain-name">${d.domain_unicode}</h3>
            ${this.renderStatus(d)}
            <div class="actions">
              <button type="button" id="check-now" part="button" ?disabled=${!!this.busy || wait > 0} aria-describedby="check-wait" @click=${this.check}>
                ${this.busy === "check" ? this.t("domains.checking") : this.t("domains.checkNow")}
              </button>
              <span class="hint" id="check-wait" part="check-wait">${wait > 0 ? this.t("domains.nextCheckIn", { seconds: wait }) : ""}</span>
            </div>
            ${this.banner ? html`<p class="banner ${this.banner.kind}" part="banner">${this.banner.text}</p>` : nothing}
            ${this.renderRecords()}`
        : this.banner
          ? html`<p class="banner ${this.banner.kind}" part="banner">${this.banner.text}</p>`
          : nothing}
      ${this.liveRegion()}
    </section>`;
  }
}

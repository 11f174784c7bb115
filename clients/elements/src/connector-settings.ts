import { css, html, nothing } from "lit";
import type {
  ConnectionTest,
  ConnectionTestStep,
  Connector,
  ConnectorCreate,
  ConnectorUpdate,
  SmtpAuthMechanism,
  SmtpSecurity,
  TestEmailResult,
} from "@sendwerk/client";
import { SendwerkElement } from "./base.js";

/** The form's fields; `password` is only ever what the user typed, never a stored one. */
interface Form {
  platform: boolean;
  senderEmail: string;
  senderName: string;
  host: string;
  port: string;
  security: SmtpSecurity;
  auth: SmtpAuthMechanism;
  username: string;
}

/** The usual port of each security choice, and the choice a well-known port suggests. */
export const defaultPorts: Record<SmtpSecurity, number> = { tls: 465, starttls: 587, none: 25 };

/**
 * securityForPort suggests the security of a well-known port: 465 → tls, 587 → starttls. Port 25
 * suggests starttls only instead of tls (servers on 25 upgrade); it never suggests `none`,
 * because turning encryption off must be the user's explicit choice.
 */
export function securityForPort(port: number, current: SmtpSecurity): SmtpSecurity {
  if (port === 465) return "tls";
  if (port === 587) return "starttls";
  if (port === 25 && current === "tls") return "starttls";
  return current;
}

const steps: ConnectionTestStep["name"][] = ["resolve", "connect", "banner", "ehlo", "tls", "auth", "quit"];
const securities: SmtpSecurity[] = ["starttls", "tls", "none"];
const mechanisms: SmtpAuthMechanism[] = ["plain", "login", "cram-md5", "none"];

// API field paths → the form's inputs, for inline errors.
const fieldIds: Record<string, keyof Form | "password"> = {
  "default_sender.email": "senderEmail",
  "default_sender.name": "senderName",
  "smtp.host": "host",
  "smtp.port": "port",
  "smtp.security": "security",
  "smtp.auth_mechanism": "auth",
  "smtp.username": "username",
  "smtp.password": "password",
};

type Banner = { kind: "ok" | "error" | "warn" | "info"; text: string } | undefined;
type StepView = { name: ConnectionTestStep["name"]; status: ConnectionTestStep["status"] | "waiting" | "running"; detail?: string; ms?: number };

/**
 * `<sendwerk-connector-settings>` is a tenant's whole "Sending" settings page: the platform's
 * default sender or the tenant's own SMTP server, a staged connection test, save, and a test
 * e-mail to `test-recipient`. Events: `sendwerk-saved` (detail: the connector),
 * `sendwerk-tested` (detail: the ConnectionTest), `sendwerk-test-email` (detail: the result).
 */
export class SendwerkConnectorSettings extends SendwerkElement {
  static override properties = {
    ...SendwerkElement.properties,
    testRecipient: { type: String, attribute: "test-recipient" },
    egressNetworks: {
      attribute: "egress-networks",
      converter: (v: string | null) => (v ? v.split(/[\s,]+/).filter(Boolean) : undefined),
    },
    connectorId: { type: String, attribute: "connector-id" },
    ownServerOnly: { type: Boolean, attribute: "own-server-only" },
    connectorName: { type: String, attribute: "connector-name" },
    form: { state: true },
    password: { state: true },
    editingPassword: { state: true },
    errors: { state: true },
    banner: { state: true },
    testBanner: { state: true },
    emailBanner: { state: true },
    stepViews: { state: true },
    busy: { state: true },
    loaded: { state: true },
    platformNetworks: { state: true },
  };

  declare testRecipient: string;
  declare egressNetworks: string[] | undefined;
  declare connectorId: string;
  declare ownServerOnly: boolean;
  declare connectorName: string;
  declare form: Form;
  declare password: string;
  declare editingPassword: boolean;
  declare errors: Record<string, string>;
  declare banner: Banner;
  declare testBanner: Banner;
  declare emailBanner: Banner;
  declare stepViews: StepView[];
  declare busy: "" | "load" | "save" | "test" | "email";
  declare loaded: boolean;
  declare platformNetworks: string[] | undefined;

  /** The saved default connector (or `connector-id`), and the tenant's SMTP and platform connectors. */
  connector: Connector | undefined;
  private smtpConnector: Connector | undefined;
  private platformConnector: Connector | undefined;
  private saved: Form | undefined;
  private adHocRecipient = "";

  constructor() {
    super();
    this.testRecipient = "";
    this.connectorId = "";
    this.ownServerOnly = false;
    this.connectorName = "";
    this.form = emptyForm();
    this.password = "";
    this.editingPassword = false;
    this.errors = {};
    this.stepViews = [];
    this.busy = "";
    this.loaded = false;
  }

  static override styles = [
    SendwerkElement.sharedStyles,
    css`
      .security-options { display: grid; gap: 0.5rem; }
      .radio { display: grid; grid-template-columns: auto 1fr; gap: 0 0.5rem; align-items: start; }
      .radio .hint { grid-column: 2; }
      .radio.insecure label { color: var(--_danger); }
      ol.steps { list-style: none; padding: 0; margin: var(--_gap) 0; display: grid; gap: 0.25rem; }
      ol.steps li { display: grid; grid-template-columns: 9rem 12rem 1fr; gap: 0.5rem; align-items: baseline; }
      .step-status { white-space: nowrap; }
      @media (max-width: 40rem) { ol.steps li { grid-template-columns: 1fr 1fr; } .step-detail { grid-column: 1 / -1; } }
      ol.steps li[data-status="ok"] .step-status { color: var(--_success); }
      ol.steps li[data-status="failed"] .step-status { color: var(--_danger); font-weight: 600; }
      ol.steps li[data-status="skipped"] .step-status, ol.steps li[data-status="waiting"] .step-status { color: var(--_muted); }
      .step-detail { color: var(--_muted); font-size: 0.875em; word-break: break-word; }
      .password-state { display: flex; gap: var(--_gap); align-items: center; flex-wrap: wrap; }
      ul.networks { margin: 0.25rem 0 0; padding-left: 1.25rem; }
    `,
  ];

  /** reload reads the connectors and fills the form from the default one. */
  override async reload(): Promise<void> {
    this.busy = "load";
    const res = await this.call(() => this.api.GET("/v1/connectors", { params: { query: { limit: 100 } } }));
    this.busy = "";
    if (!res.data) {
      this.banner = { kind: "error", text: this.failure(res.error, res.response).message };
      return;
    }
    const items = res.data.items;
    this.connector = this.connectorId ? items.find((c) => c.id === this.connectorId) : items.find((c) => c.is_default);
    this.smtpConnector = this.connector?.kind === "smtp" ? this.connector : items.find((c) => c.kind === "smtp");
    this.platformConnector = this.connector?.kind === "platform" ? this.connector : items.find((c) => c.kind === "platform");
    this.fill();
    this.loaded = true;
    if (!this.egressNetworks) void this.loadPlatform();
  }

  // loadPlatform reads the operator's published egress networks (GET /v1/platform) when the
  // server offers it; older servers answer 404 and nothing is shown.
  private async loadPlatform(): Promise<void> {
    try {
      const get = this.api.GET as unknown as (p: string) => Promise<{ data?: { egress_networks?: unknown } }>;
      const { data } = await get("/v1/platform");
      const nets = data?.egress_networks;
      if (Array.isArray(nets)) this.platformNetworks = nets.map((n) => (typeof n === "string" ? n : String((n as { cidr?: string }).cidr ?? ""))).filter(Boolean);
    } catch {
      // No platform facts: nothing to show.
    }
  }

  private fill(): void {
    const c = this.connector;
    const smtp = this.smtpConnector?.smtp;
    this.form = {
      platform: !this.ownServerOnly && c?.kind === "platform",
      senderEmail: c?.default_sender.email ?? "",
      senderName: c?.default_sender.name ?? "",
      host: smtp?.host ?? "",
      port: String(smtp?.port ?? defaultPorts.starttls),
      security: smtp?.security ?? "starttls",
      auth: smtp?.auth_mechanism ?? "plain",
      username: smtp?.username ?? "",
    };
    this.saved = { ...this.form };
    this.password = "";
    this.editingPassword = !this.smtpConnector?.smtp?.password_set;
  }

  private get dirty(): boolean {
    if (!this.saved || this.password !== "") return true;
    return (Object.keys(this.form) as (keyof Form)[]).some((k) => this.form[k] !== this.saved![k]);
  }

  private set<K extends keyof Form>(key: K, value: Form[K]): void {
    this.form = { ...this.form, [key]: value };
    if (this.errors[key]) {
      const { [key]: _, ...rest } = this.errors;
      this.errors = rest;
    }
  }

  private onSecurity(security: SmtpSecurity): void {
    const port = Number(this.form.port);
    const usual = Object.values(defaultPorts);
    this.set("security", security);
    // Suggest the usual port unless the user typed an unusual one on purpose.
    if (!this.form.port || usual.includes(port)) this.set("port", String(defaultPorts[security]));
  }

  private onPort(value: string): void {
    this.set("port", value);
    const port = Number(value);
    if (Number.isInteger(port)) this.set("security", securityForPort(port, this.form.security));
  }

  private body(): ConnectorCreate {
    const f = this.form;
    const sender = { email: f.senderEmail.trim(), ...(f.senderName.trim() ? { name: f.senderName.trim() } : {}) };
    if (f.platform) return { name: this.connectorName || "Platform default", kind: "platform", default_sender: sender, is_default: true };
    const username = f.username.trim();
    return {
      name: this.connectorName || `SMTP ${f.host.trim()}`.slice(0, 100),
      kind: "smtp",
      is_default: true,
      default_sender: sender,
      smtp: {
        host: f.host.trim(),
        port: Number(f.port),
        security: f.security,
        auth_mechanism: f.auth,
        ...(username ? { username } : {}),
        ...(this.password ? { password: this.password } : {}),
      },
    };
  }

  private showFailure(where: "banner" | "testBanner" | "emailBanner", error: unknown, response?: Response): void {
    const f = this.failure(error, response);
    const errors: Record<string, string> = {};
    const unmapped: string[] = [];
    for (const [field, message] of Object.entries(f.fields)) {
      const id = fieldIds[field];
      if (id) errors[id] = message;
      else unmapped.push(`${field}: ${message}`);
    }
    this.errors = errors;
    const text = [f.message, ...unmapped].join(" ");
    this[where] = { kind: "error", text };
    this.announce(text);
    const first = Object.keys(errors)[0];
    if (first) void this.updateComplete.then(() => (this.renderRoot.querySelector(`#${first}`) as HTMLElement | null)?.focus());
  }

  /** save creates or updates the connector and makes it the default. */
  async save(): Promise<void> {
    const body = this.body();
    const existing = body.kind === "smtp" ? this.smtpConnector : this.platformConnector;
    this.busy = "save";
    this.banner = undefined;
    this.errors = {};
    let res;
    if (existing) {
      const patch: ConnectorUpdate = { default_sender: body.default_sender, ...(this.connectorId ? {} : { is_default: true }) };
      if (body.smtp) {
        const { password, username, ...rest } = body.smtp;
        patch.smtp = { ...rest, username: username ?? null, ...(password ? { password } : {}) };
      }
      res = await this.call(() => this.api.PATCH("/v1/connectors/{connector_id}", { params: { path: { connector_id: existing.id } }, body: patch }));
    } else {
      res = await this.call(() => this.api.POST("/v1/connectors", { body }));
    }
    this.busy = "";
    if (!res.data) {
      this.showFailure("banner", res.error, res.response);
      return;
    }
    const saved = res.data;
    this.connector = saved;
    if (saved.kind === "smtp") this.smtpConnector = saved;
    else this.platformConnector = saved;
    this.fill();
    this.banner = { kind: "ok", text: this.t("settings.saved") };
    this.announce(this.t("settings.saved"));
    this.emit("sendwerk-saved", saved);
  }

  /** test runs the staged connection test: the saved connector when unchanged, else the form. */
  async test(): Promise<void> {
    const body = this.body();
    const stored = body.kind === "smtp" && this.smtpConnector?.smtp?.password_set && !this.password;
    const unchanged = !this.dirty && this.connector && this.connector.kind === body.kind;
    if (!unchanged && stored && this.form.auth !== "none") {
      this.editingPassword = true;
      this.errors = { ...this.errors, password: this.t("settings.passwordRetype") };
      this.announce(this.t("settings.passwordRetype"));
      await this.updateComplete;
      (this.renderRoot.querySelector("#password") as HTMLElement | null)?.focus();
      return;
    }
    this.busy = "test";
    this.testBanner = { kind: "info", text: this.t("settings.testing") };
    this.errors = {};
    this.stepViews = steps.map((name, i) => ({ name, status: i === 0 ? "running" : "waiting" }));
    this.announce(this.t("settings.testing"));
    const res = unchanged
      ? await this.call(() => this.api.POST("/v1/connectors/{connector_id}/test", { params: { path: { connector_id: this.connector!.id } } }))
      : await this.call(() => this.api.POST("/v1/connector-tests", { body }));
    if (!res.data) {
      this.busy = "";
      this.stepViews = [];
      this.showFailure("testBanner", res.error, res.response);
      return;
    }
    await this.reveal(res.data);
    this.busy = "";
  }

  // reveal shows the steps one after another, so the user sees how far the connection got.
  private async reveal(result: ConnectionTest): Promise<void> {
    const byName = new Map(result.steps.map((s) => [s.name, s]));
    const order = steps.filter((n) => byName.has(n));
    for (let i = 0; i < order.length; i++) {
      this.stepViews = order.map((name, j) => {
        const s = byName.get(name)!;
        if (j <= i) return { name, status: s.status, detail: s.detail, ms: s.duration_ms };
        return { name, status: j === i + 1 && s.status !== "skipped" ? "running" : "waiting" };
      });
      await new Promise((r) => setTimeout(r, 60));
    }
    const failed = result.steps.find((s) => s.status === "failed");
    const text = result.ok
      ? this.t("settings.testOk", { ms: this.number(result.duration_ms) })
      : this.t("settings.testFailed", {
          step: this.t(`step.${failed?.name ?? "connect"}`),
          message: this.explain(result.code, result.message ?? failed?.detail ?? "", { host: result.host, port: result.port }),
        });
    this.testBanner = { kind: result.ok ? "ok" : "error", text: result.ok || !result.code ? text : `${text} (${result.code})` };
    this.announce(text);
    this.emit("sendwerk-tested", result);
  }

  /** sendTestEmail sends a real message through the saved connector to test-recipient. */
  async sendTestEmail(): Promise<void> {
    const to = this.testRecipient || this.adHocRecipient;
    if (!this.connector || !to) return;
    if (this.dirty) {
      this.emailBanner = { kind: "warn", text: this.t("settings.testEmailSaveFirst") };
      this.announce(this.t("settings.testEmailSaveFirst"));
      return;
    }
    this.busy = "email";
    this.emailBanner = { kind: "info", text: this.t("settings.testEmailSending", { to }) };
    this.announce(this.t("settings.testEmailSending", { to }));
    const id = this.connector.id;
    const res = await this.call(() => this.api.POST("/v1/connectors/{connector_id}/test-email", { params: { path: { connector_id: id } }, body: { to } }));
    this.busy = "";
    if (!res.data) {
      this.showFailure("emailBanner", res.error, res.response);
      return;
    }
    const r: TestEmailResult = res.data;
    const reply = r.reply ? `${r.reply.code}${r.reply.enhanced_code ? " " + r.reply.enhanced_code : ""} ${r.reply.text}` : "";
    const host = this.smtpConnector?.smtp?.host ?? "";
    const port = this.smtpConnector?.smtp?.port ?? "";
    const failure = this.explain(r.code, r.message ?? r.code ?? "", { host, port });
    const text = r.ok ? this.t("settings.testEmailOk", { to, reply }) : this.t("settings.testEmailFailed", { message: reply ? `${failure} (${reply})` : failure });
    this.emailBanner = { kind: r.ok ? "ok" : "error", text };
    this.announce(text);
    this.emit("sendwerk-test-email", r);
  }

  private input(id: keyof Form, label: string, type: string, opts: { hint?: string; autocomplete?: string; required?: boolean; inputmode?: string } = {}) {
    const err = this.errors[id];
    const describedBy = [opts.hint ? `${id}-hint` : "", err ? `${id}-error` : ""].filter(Boolean).join(" ");
    return html`<div class="field" part="field">
      <label for=${id} part="label">${label}</label>
      <input id=${id} name=${id} part="input" type=${type} .value=${String(this.form[id])}
        autocomplete=${opts.autocomplete ?? "off"} inputmode=${opts.inputmode ?? nothing} ?required=${opts.required ?? false}
        aria-invalid=${err ? "true" : "false"} aria-describedby=${describedBy || nothing}
        @input=${(e: Event) => (id === "port" ? this.onPort((e.target as HTMLInputElement).value) : this.set(id, (e.target as HTMLInputElement).value as never))} />
      ${opts.hint ? html`<p class="hint" id="${id}-hint">${opts.hint}</p>` : nothing}
      ${err ? html`<p class="error" id="${id}-error" part="error">${err}</p>` : nothing}
    </div>`;
  }

  private renderBanner(b: Banner, part: string) {
    if (!b) return nothing;
    return html`<p class="banner ${b.kind}" part="${part} banner banner-${b.kind}">${b.text}</p>`;
  }

  private renderServer() {
    const f = this.form;
    const pwSet = this.smtpConnector?.smtp?.password_set ?? false;
    const pwErr = this.errors.password;
    return html`<fieldset part="server">
      <legend>${this.t("settings.ownServer")}</legend>
      <div class="row">
        ${this.input("host", this.t("settings.host"), "text", { required: true, autocomplete: "off" })}
        ${this.input("port", this.t("settings.port"), "number", { hint: this.t("settings.portHint"), required: true, inputmode: "numeric" })}
      </div>
      <fieldset part="security">
        <legend>${this.t("settings.security")}</legend>
        <div class="security-options">
          ${securities.map(
            (s) => html`<div class="radio ${s === "none" ? "insecure" : ""}">
              <input type="radio" id="security-${s}" name="security" value=${s} .checked=${f.security === s}
                aria-describedby="security-${s}-hint" @change=${() => this.onSecurity(s)} />
              <label for="security-${s}">${this.t(`settings.security.${s}`)}</label>
              <p class="hint ${s === "none" ? "warn" : ""}" id="security-${s}-hint">${this.t(`settings.security.${s}.hint`)}</p>
            </div>`,
          )}
        </div>
        ${this.errors.security ? html`<p class="error" part="error">${this.errors.security}</p>` : nothing}
      </fieldset>
      <div class="row">
        <div class="field" part="field">
          <label for="auth" part="label">${this.t("settings.auth")}</label>
          <select id="auth" part="input" .value=${f.auth} @change=${(e: Event) => this.set("auth", (e.target as HTMLSelectElement).value as SmtpAuthMechanism)}>
            ${mechanisms.map((m) => html`<option value=${m} ?selected=${f.auth === m}>${this.t(`settings.auth.${m}`)}</option>`)}
          </select>
          ${this.errors.auth ? html`<p class="error" part="error">${this.errors.auth}</p>` : nothing}
        </div>
        ${f.auth === "none" ? nothing : this.input("username", this.t("settings.username"), "text", { autocomplete: "off" })}
      </div>
      ${f.auth === "none"
        ? nothing
        : html`<div class="field" part="field password">
            ${pwSet && !this.editingPassword
              ? html`<span part="label" id="password-label"><strong>${this.t("settings.password")}</strong></span>
                  <div class="password-state">
                    <span part="password-state" data-password-set="true">${this.t("settings.passwordSet")}</span>
                    <button type="button" id="change-password" part="button" aria-describedby="password-label" @click=${this.startPasswordChange}>${this.t("settings.passwordChange")}</button>
                  </div>`
              : html`<label for="password" part="label">${this.t("settings.password")}</label>
                  <input id="password" part="input" type="password" autocomplete="new-password" .value=${this.password}
                    aria-invalid=${pwErr ? "true" : "false"} aria-describedby=${pwErr ? "password-error" : nothing}
                    @input=${(e: Event) => {
                      this.password = (e.target as HTMLInputElement).value;
                    }} />
                  ${pwSet
                    ? html`<div><button type="button" class="link" part="button" @click=${this.keepPassword}>${this.t("settings.passwordKeep")}</button></div>`
                    : nothing}
                  ${pwErr ? html`<p class="error" id="password-error" part="error">${pwErr}</p>` : nothing}`}
          </div>`}
    </fieldset>`;
  }

  private startPasswordChange = async () => {
    this.editingPassword = true;
    await this.updateComplete;
    (this.renderRoot.querySelector("#password") as HTMLElement | null)?.focus();
  };

  private keepPassword = async () => {
    this.password = "";
    this.editingPassword = false;
    if (this.errors.password) this.errors = { ...this.errors, password: "" };
    await this.updateComplete;
    (this.renderRoot.querySelector("#change-password") as HTMLElement | null)?.focus();
  };

  private renderSteps() {
    if (this.stepViews.length === 0) return nothing;
    return html`<ol class="steps" part="steps" aria-label=${this.t("settings.test")}>
      ${this.stepViews.map(
        (s) => html`<li part="step step-${s.status}" data-step=${s.name} data-status=${s.status}>
          <span class="step-name">${this.t(`step.${s.name}`)}</span>
          <span class="step-status">${this.t(`status.${s.status}`)}${s.ms !== undefined && s.status === "ok" ? html` · ${this.number(s.ms)} ms` : nothing}</span>
          <span class="step-detail">${s.detail ?? ""}</span>
        </li>`,
      )}
    </ol>`;
  }

  private renderEgress() {
    const nets = this.egressNetworks ?? this.platformNetworks;
    if (!nets || nets.length === 0 || this.form.platform) return nothing;
    return html`<section part="egress" aria-labelledby="egress-title">
      <h3 id="egress-title">${this.t("settings.egress")}</h3>
      <p class="hint">${this.t("settings.egressHint")}</p>
      <ul class="networks">
        ${nets.map((n) => html`<li><code>${n}</code></li>`)}
      </ul>
      <div class="actions">
        <button type="button" part="button copy-button" @click=${() => this.copy(nets.join("\n"), this.t("settings.egress"))}>
          ${this.t("common.copyLabel", { what: this.t("settings.egress") })}
        </button>
      </div>
    </section>`;
  }

  private renderTestEmail() {
    if (!this.connector) return nothing;
    const to = this.testRecipient || this.adHocRecipient;
    return html`<div class="actions" part="test-email">
      ${this.testRecipient
        ? nothing
        : html`<div class="field"><label for="test-to">${this.t("log.recipient")}</label>
            <input id="test-to" type="email" part="input" autocomplete="email" @input=${(e: Event) => {
              this.adHocRecipient = (e.target as HTMLInputElement).value;
              this.requestUpdate();
            }} /></div>`}
      <button type="button" id="send-test-email" part="button" ?disabled=${!!this.busy || !to} aria-describedby="test-email-hint" @click=${this.sendTestEmail}>
        ${this.t("settings.testEmail")}
      </button>
      <span class="hint" id="test-email-hint">${to ? this.t("settings.testEmailTo", { to }) : ""}</span>
    </div>
    ${this.renderBanner(this.emailBanner, "test-email-result")}`;
  }

  override render() {
    const f = this.form;
    const warnings = this.connector?.warnings ?? [];
    return html`<form part="form" novalidate aria-busy=${this.busy ? "true" : "false"} @submit=${(e: Event) => {
        e.preventDefault();
        void this.save();
      }}>
      <h2 part="title">${this.t("settings.title")}</h2>
      ${this.busy === "load" ? html`<p class="hint">${this.t("common.loading")}</p>` : nothing}
      ${this.ownServerOnly
        ? nothing
        : html`<div class="field check" part="field platform">
            <div>
              <input type="checkbox" id="platform" .checked=${f.platform} aria-describedby="platform-hint"
                @change=${(e: Event) => this.set("platform", (e.target as HTMLInputElement).checked)} />
              <label for="platform">${this.t("settings.usePlatform")}</label>
            </div>
            <p class="hint" id="platform-hint">${this.t("settings.usePlatformHint")}</p>
          </div>`}
      <div class="row">
        ${this.input("senderEmail", this.t("settings.senderEmail"), "email", { required: true, autocomplete: "email" })}
        ${this.input("senderName", this.t("settings.senderName"), "text", { autocomplete: "organization" })}
      </div>
      ${f.platform ? nothing : this.renderServer()}
      ${warnings.length
        ? html`<div class="banner warn" part="warnings" role="note"><strong>${this.t("settings.warnings")}:</strong> ${warnings.join(" ")}</div>`
        : nothing}
      <div class="actions">
        <button type="button" id="test" part="button" ?disabled=${!!this.busy} @click=${this.test}>${this.t("settings.test")}</button>
        <button type="submit" id="save" class="primary" part="button button-primary" ?disabled=${!!this.busy}>
          ${this.busy === "save" ? this.t("settings.saving") : this.t("settings.save")}
        </button>
      </div>
      ${this.renderBanner(this.banner, "save-result")}
      <section part="test-result" aria-label=${this.t("settings.test")}>
        ${this.renderSteps()} ${this.renderBanner(this.testBanner, "test-summary")}
      </section>
      ${this.renderTestEmail()} ${this.renderEgress()} ${this.liveRegion()}
    </form>`;
  }
}

function emptyForm(): Form {
  return { platform: false, senderEmail: "", senderName: "", host: "", port: "587", security: "starttls", auth: "plain", username: "" };
}

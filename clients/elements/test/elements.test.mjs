// Browser tests of the elements: Debian's Chromium (playwright-core) against a real `sendwerk
// serve` with its embedded PostgreSQL, a test SMTP server and a test DNS server, through the
// README's proxy. Screenshots go to test-results/ (gitignored) for people to look at.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { startSmtpServer } from "./support/smtp.mjs";
import { startDnsServer } from "./support/dns.mjs";
import { api, newTenant, startSendwerk } from "./support/sendwerk.mjs";
import { startHost } from "./support/host.mjs";
import { startBrowser } from "./support/browser.mjs";

const shots = fileURLToPath(new URL("../test-results/", import.meta.url));
mkdirSync(shots, { recursive: true });

const SMTP_USER = "acme";
const SMTP_PASSWORD = "s3cret-Passw0rd!";
const SENDER = "noreply@acme.example";

let smtp, dns, sw, host, browser, tenantKey;

before(async () => {
  smtp = await startSmtpServer({ username: SMTP_USER, password: SMTP_PASSWORD });
  dns = await startDnsServer();
  // The platform's default relay is the same test SMTP server (no login).
  sw = await startSendwerk({ dnsServer: dns.address, env: { SENDWERK_PLATFORM_SMTP_URL: `smtp://127.0.0.1:${smtp.port}` } });
  const t = await newTenant(sw, "Acme");
  tenantKey = t.key;
  host = await startHost({ sendwerkUrl: sw.baseUrl, apiKey: tenantKey });
  browser = await startBrowser();
  await browser.context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: host.url });
});

after(async () => {
  await browser?.close();
  await host?.close();
  await sw?.stop();
  await dns?.close();
  await smtp?.close();
});

async function open(view, lang = "en") {
  const page = await browser.context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  await page.goto(`${host.url}/${view}?lang=${lang}`);
  page.jsErrors = errors;
  return page;
}

// axe checks the page, shadow roots included, and returns the serious and critical violations.
async function axe(page) {
  await page.addScriptTag({ url: "/axe.min.js" });
  const result = await page.evaluate(async () => await globalThis.axe.run(document, { resultTypes: ["violations"] }));
  return result.violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`);
}

const settings = "sendwerk-connector-settings";

async function fillServer(page, { port, password = SMTP_PASSWORD }) {
  await page.locator(`${settings} #senderEmail`).fill(SENDER);
  await page.locator(`${settings} #senderName`).fill("Acme");
  await page.locator(`${settings} #host`).fill("127.0.0.1");
  await page.locator(`${settings} #security-none`).check();
  await page.locator(`${settings} #port`).fill(String(port));
  await page.locator(`${settings} #auth`).selectOption("plain");
  await page.locator(`${settings} #username`).fill(SMTP_USER);
  await page.locator(`${settings} #password`).fill(password);
}

describe("connector settings", () => {
  it("suggests ports from the security choice and the reverse", async () => {
    const page = await open("settings");
    await page.locator(`${settings} #security-tls`).check();
    assert.equal(await page.locator(`${settings} #port`).inputValue(), "465");
    await page.locator(`${settings} #security-starttls`).check();
    assert.equal(await page.locator(`${settings} #port`).inputValue(), "587");
    await page.locator(`${settings} #security-none`).check();
    assert.equal(await page.locator(`${settings} #port`).inputValue(), "25");
    await page.locator(`${settings} #port`).fill("465");
    assert.equal(await page.locator(`${settings} #security-tls`).isChecked(), true);
    await page.locator(`${settings} #port`).fill("587");
    assert.equal(await page.locator(`${settings} #security-starttls`).isChecked(), true);
    // An unusual port stays when the security changes.
    await page.locator(`${settings} #port`).fill("2525");
    await page.locator(`${settings} #security-tls`).check();
    assert.equal(await page.locator(`${settings} #port`).inputValue(), "2525");
    // The insecure choice is flagged.
    assert.match(await page.locator(`${settings} #security-none-hint`).innerText(), /Insecure/);
    await page.close();
  });

  it("names the failing step and its sentence for a wrong port, then passes every step", async () => {
    const page = await open("settings");
    const closed = await unusedPort();
    await fillServer(page, { port: closed });
    await page.locator(`${settings} #test`).click();
    const failed = page.locator(`${settings} li[data-status="failed"]`);
    await failed.waitFor();
    assert.equal(await failed.getAttribute("data-step"), "connect");
    const summary = page.locator(`${settings} [part~="test-summary"]`);
    await summary.filter({ hasText: "failed" }).waitFor();
    const text = await summary.innerText();
    assert.match(text, /TCP connection/);
    assert.match(text, /tcp\.refused/);
    assert.match(text, new RegExp(String(closed)));
    assert.equal(await page.locator(`${settings} li[data-status="skipped"]`).count() > 0, true);
    await page.screenshot({ path: shots + "settings-test-failed.png", fullPage: true });

    await page.locator(`${settings} #port`).fill(String(smtp.port));
    await page.locator(`${settings} #test`).click();
    await summary.filter({ hasText: "every step passed" }).waitFor();
    assert.equal(await page.locator(`${settings} li[data-status="failed"]`).count(), 0);
    for (const step of ["resolve", "connect", "banner", "ehlo", "auth"]) {
      assert.equal(await page.locator(`${settings} li[data-step="${step}"]`).getAttribute("data-status"), "ok", step);
    }
    await page.screenshot({ path: shots + "settings-test-passed.png", fullPage: true });
    assert.deepEqual(page.jsErrors, []);
    await page.close();
  });

  it("shows the API's field errors inline", async () => {
    const page = await open("settings");
    await fillServer(page, { port: 70000 });
    await page.locator(`${settings} #save`).click();
    const err = page.locator(`${settings} #port-error`);
    await err.waitFor();
    assert.match(await err.innerText(), /65535|maximum|less than/i);
    assert.equal(await page.locator(`${settings} #port`).getAttribute("aria-invalid"), "true");
    await page.screenshot({ path: shots + "settings-field-error.png", fullPage: true });
    await page.close();
  });

  it("saves, then shows the password as set and never renders it", async () => {
    const page = await open("settings");
    const bodies = [];
    page.on("response", async (r) => {
      if (r.url().includes("/api/sendwerk/")) bodies.push(await r.text().catch(() => ""));
    });
    await fillServer(page, { port: smtp.port });
    await page.locator(`${settings} #save`).click();
    await page.locator(`${settings} [part~="save-result"]`).filter({ hasText: "Saved." }).waitFor();
    await page.locator(`${settings} [data-password-set="true"]`).waitFor();
    assert.equal(await page.locator(`${settings} #password`).count(), 0);

    await page.reload();
    await page.locator(`${settings} [data-password-set="true"]`).waitFor();
    assert.equal(await page.locator(`${settings} #host`).inputValue(), "127.0.0.1");
    const html = await page.locator(settings).evaluate((el) => el.shadowRoot.innerHTML);
    assert.equal(html.includes(SMTP_PASSWORD), false);
    assert.equal(bodies.some((b) => b.includes(SMTP_PASSWORD)), false);
    // "Change" opens an empty field and moves focus into it.
    await page.locator(`${settings} #change-password`).click();
    assert.equal(await page.locator(`${settings} #password`).inputValue(), "");
    assert.equal(await page.evaluate(() => document.activeElement.shadowRoot.activeElement.id), "password");
    await page.screenshot({ path: shots + "settings-saved.png", fullPage: true });
    await page.close();
  });

  it("sends a test e-mail to the host page's address and it arrives", async () => {
    const page = await open("settings");
    await page.locator(`${settings} [data-password-set="true"]`).waitFor();
    const before = smtp.messages.length;
    await page.locator(`${settings} #send-test-email`).click();
    await page.locator(`${settings} [part~="test-email-result"]`).filter({ hasText: "accepted" }).waitFor();
    assert.equal(smtp.messages.length, before + 1);
    const msg = smtp.messages.at(-1);
    assert.deepEqual(msg.to, ["it@customer.example"]);
    assert.equal(msg.from, SENDER);
    // The egress networks given by the host page are listed.
    assert.match(await page.locator(`${settings} [part~="egress"]`).innerText(), /192\.0\.2\.0\/24/);
    await page.screenshot({ path: shots + "settings-test-email.png", fullPage: true });
    await page.close();
  });

  it("asks for the password again to test changed settings, and tests unchanged ones with the stored one", async () => {
    const page = await open("settings");
    await page.locator(`${settings} [data-password-set="true"]`).waitFor();
    await page.locator(`${settings} #host`).fill("localhost");
    await page.locator(`${settings} #test`).click();
    await page.locator(`${settings} #password-error`).filter({ hasText: "enter the password again" }).waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.shadowRoot.activeElement.id), "password");
    assert.equal(await page.locator(`${settings} li[data-step]`).count(), 0, "no test ran without the password");
    await page.locator(`${settings} #password`).fill(SMTP_PASSWORD);
    await page.locator(`${settings} #test`).click();
    await page.locator(`${settings} [part~="test-summary"]`).filter({ hasText: "every step passed" }).waitFor();
    await page.reload();
    await page.locator(`${settings} [data-password-set="true"]`).waitFor();
    await page.locator(`${settings} #test`).click();
    await page.locator(`${settings} [part~="test-summary"]`).filter({ hasText: "every step passed" }).waitFor();
    await page.close();
  });

  it("speaks German", async () => {
    const page = await open("settings", "de");
    await page.locator(`${settings} [data-password-set="true"]`).waitFor();
    assert.equal(await page.locator(`${settings} #test`).innerText(), "Verbindung testen");
    assert.equal(await page.locator(`${settings} #save`).innerText(), "Speichern");
    assert.match(await page.locator(`${settings} label[for="security-none"]`).innerText(), /Keine \(unsicher\)/);
    // A failure is explained in German, with the stable code.
    const closed = await unusedPort();
    await page.locator(`${settings} #port`).fill(String(closed));
    await page.locator(`${settings} #change-password`).click();
    await page.locator(`${settings} #password`).fill(SMTP_PASSWORD);
    await page.locator(`${settings} #test`).click();
    await page.locator(`${settings} [part~="test-summary"]`).filter({ hasText: "gescheitert" }).waitFor();
    assert.match(
      await page.locator(`${settings} [part~="test-summary"]`).innerText(),
      new RegExp(`bei „TCP-Verbindung“ gescheitert: Auf 127\\.0\\.0\\.1 Port ${closed} nimmt nichts Verbindungen an.*\\(tcp\\.refused\\)`),
    );
    await page.screenshot({ path: shots + "settings-de-failed.png", fullPage: true });
    await page.locator(`${settings} #port`).fill(String(smtp.port));
    await page.locator(`${settings} #test`).click();
    await page.locator(`${settings} [part~="test-summary"]`).filter({ hasText: "Alle Schritte erfolgreich" }).waitFor();
    assert.equal(await page.locator(`${settings} li[data-step="connect"] .step-name`).innerText(), "TCP-Verbindung");
    await page.screenshot({ path: shots + "settings-de.png", fullPage: true });
    await page.close();
  });

  it("takes other languages by dictionary, falling back to English", async () => {
    const page = await open("settings");
    await page.locator(`${settings} [data-password-set="true"]`).waitFor();
    await page.evaluate(async () => {
      const { registerLocale } = await import("/sendwerk-elements.js");
      registerLocale("fr", { "settings.save": "Enregistrer", "settings.test": "Tester la connexion" });
      document.querySelector("sendwerk-connector-settings").setAttribute("lang", "fr");
    });
    await page.locator(`${settings} #save`).filter({ hasText: "Enregistrer" }).waitFor();
    assert.equal(await page.locator(`${settings} #test`).innerText(), "Tester la connexion");
    assert.equal(await page.locator(`${settings} label[for="host"]`).innerText(), "Server (host)");
    await page.close();
  });

  it("works with the keyboard alone", async () => {
    const page = await open("settings");
    await page.locator(`${settings} [data-password-set="true"]`).waitFor();
    const reached = [];
    for (let i = 0; i < 40; i++) {
      await page.keyboard.press("Tab");
      const id = await page.evaluate(() => document.activeElement?.shadowRoot?.activeElement?.id ?? "");
      reached.push(id);
      if (id === "test") break;
    }
    for (const id of ["platform", "senderEmail", "senderName", "host", "port", "security-none", "auth", "username", "change-password", "test"]) {
      assert.ok(reached.includes(id), `${id} not reachable by Tab: ${reached.join(",")}`);
    }
    await page.keyboard.press("Enter");
    await page.locator(`${settings} [part~="test-summary"]`).filter({ hasText: "every step passed" }).waitFor();
    // The live region announces the result.
    await page.locator(`${settings} [role="status"]`).filter({ hasText: "every step passed" }).waitFor();
    // Arrow keys move between the security choices; a well-known port follows.
    await page.locator(`${settings} #security-none`).focus();
    await page.keyboard.press("ArrowUp");
    assert.equal(await page.locator(`${settings} #security-tls`).isChecked(), true);
    await page.close();
  });

  it("switches to the platform's default sender and back", async () => {
    const page = await open("settings");
    await page.locator(`${settings} [data-password-set="true"]`).waitFor();
    await page.locator(`${settings} #platform`).check();
    assert.equal(await page.locator(`${settings} #host`).count(), 0, "no server fields for the platform sender");
    await page.locator(`${settings} #save`).click();
    await page.locator(`${settings} [part~="save-result"]`).filter({ hasText: "Saved." }).waitFor();
    const list = await api(sw.baseUrl, tenantKey, "GET", "/v1/connectors");
    assert.equal(list.items.find((c) => c.is_default).kind, "platform");
    await page.reload();
    await page.locator(`${settings} #platform:checked`).waitFor();
    await page.locator(`${settings} #platform`).uncheck();
    // The own server's saved settings come back, password still set.
    assert.equal(await page.locator(`${settings} #host`).inputValue(), "127.0.0.1");
    assert.equal(await page.locator(`${settings} [data-password-set="true"]`).count(), 1);
    await page.locator(`${settings} #save`).click();
    await page.locator(`${settings} [part~="save-result"]`).filter({ hasText: "Saved." }).waitFor();
    const after = await api(sw.baseUrl, tenantKey, "GET", "/v1/connectors");
    assert.equal(after.items.find((c) => c.is_default).kind, "smtp");
    assert.equal(after.items.length, 2, "switching back reuses the connectors");
    await page.close();
  });

  it("has no serious accessibility violations", async () => {
    const page = await open("settings");
    await page.locator(`${settings} [data-password-set="true"]`).waitFor();
    await page.locator(`${settings} #test`).click();
    await page.locator(`${settings} [part~="test-summary"]`).filter({ hasText: "passed" }).waitFor();
    assert.deepEqual(await axe(page), []);
    await page.close();
  });
});

describe("domain setup", () => {
  const domains = "sendwerk-domain-setup";

  it("copies the records exactly and turns verified when DNS serves them", async () => {
    const page = await open("domains");
    await page.locator(`${domains} #new-domain`).fill("acme.example");
    await page.locator(`${domains} #new-domain`).press("Enter");
    await page.locator(`${domains} tr[part~="record"]`).first().waitFor();
    const dom = (await api(sw.baseUrl, tenantKey, "GET", "/v1/domains")).items[0];
    const expected = await api(sw.baseUrl, tenantKey, "GET", `/v1/domains/${dom.id}/records`);

    for (const rec of expected.records.filter((r) => r.requirement === "required")) {
      const row = page.locator(`${domains} tr[data-purpose="${rec.purpose}"]`);
      await row.locator("td.value button").click();
      const value = await page.evaluate(() => navigator.clipboard.readText());
      assert.equal(value, rec.value, `${rec.purpose} value`);
      await row.locator(".fqdn button").click();
      const fqdn = await page.evaluate(() => navigator.clipboard.readText());
      assert.equal(fqdn, rec.fqdn);
      await row.locator("td:nth-child(2) .copyable:not(.fqdn) button").click();
      assert.equal(await page.evaluate(() => navigator.clipboard.readText()), rec.host);
      dns.set(fqdn, [value]); // what the customer pastes at the DNS provider
    }
    await page.screenshot({ path: shots + "domains-pending.png", fullPage: true });

    // Zone view: TXT values split into strings of at most 255 bytes.
    await page.locator(`${domains} button[aria-pressed]`).filter({ hasText: "Zone file" }).click();
    const zone = await page.locator(`${domains} pre[part="zone"]`).innerText();
    const dkimLine = zone.split("\n").find((l) => l.includes("_domainkey"));
    const strings = [...dkimLine.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]);
    assert.ok(strings.length >= 2, dkimLine);
    for (const s of strings) assert.ok(Buffer.byteLength(s) <= 255, s);
    const dkim = expected.records.find((r) => r.purpose === "dkim");
    assert.equal(strings.join(""), dkim.value);
    await page.locator(`${domains} button[aria-pressed]`).filter({ hasText: "Table" }).click();

    await page.locator(`${domains} #check-now`).click();
    await page.locator(`${domains} [part="status"][data-status="verified"]`).waitFor();
    assert.equal(await page.locator(`${domains} tr[data-purpose="dkim"]`).getAttribute("data-status"), "pass");
    await page.screenshot({ path: shots + "domains-verified.png", fullPage: true });

    // A second check at once is refused by the server's rate limit: the button says when.
    await page.locator(`${domains} #check-now`).click();
    await page.locator(`${domains} #check-wait`).filter({ hasText: /Next manual check possible in \d+ s/ }).waitFor();
    assert.equal(await page.locator(`${domains} #check-now`).isDisabled(), true);
    assert.deepEqual(await axe(page), []);

    // Records removed: after the wait the check makes the domain at risk, with its grace clock.
    dns.clear();
    const clock = page.locator(`${domains} [part="grace-clock"]`);
    // Click when the element allows it; should the server still say "wait", the element
    // counts down again and the next click goes through.
    for (let i = 0; i < 3 && !(await clock.isVisible()); i++) {
      await page.locator(`${domains} #check-now:not([disabled])`).waitFor({ timeout: 10_000 });
      await page.locator(`${domains} #check-now`).click();
      await page.locator(`${domains} [part="banner"]`).filter({ hasText: /Check finished|Next manual check/ }).waitFor();
    }
    await clock.waitFor().catch(async (err) => {
      await page.screenshot({ path: shots + "domains-at-risk-failed.png", fullPage: true });
      throw err;
    });
    const after = await api(sw.baseUrl, tenantKey, "GET", `/v1/domains/${dom.id}`);
    assert.equal(after.status, "at_risk");
    const when = new Intl.DateTimeFormat("en", { dateStyle: "medium", timeStyle: "short", timeZone: "Europe/Berlin" }).format(new Date(after.revokes_at));
    assert.match(await clock.innerText(), new RegExp(`Send rights end on ${when.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`));
    assert.match(await page.locator(`${domains} tr[data-purpose="ownership"] [part~="record-message"]`).innerText(), /sendwerk-verification/);
    await page.screenshot({ path: shots + "domains-at-risk.png", fullPage: true });
    await page.close();
  });

  it("speaks German", async () => {
    const page = await open("domains", "de");
    await page.locator(`${domains} [part="grace-clock"]`).waitFor();
    assert.match(await page.locator(`${domains} [part="grace-clock"]`).innerText(), /Das Senderecht endet am/);
    assert.equal(await page.locator(`${domains} #check-now`).innerText(), "Jetzt prüfen");
    await page.screenshot({ path: shots + "domains-de.png", fullPage: true });
    await page.close();
  });
});

describe("message log", () => {
  const log = "sendwerk-message-log";

  it("filters, pages and shows a timeline", async () => {
    for (let i = 1; i <= 6; i++) {
      await api(sw.baseUrl, tenantKey, "POST", "/v1/messages", { from: SENDER, to: [`r${i}@customer.example`], subject: `Order ${i} shipped`, text: "Your order is on its way." });
    }
    // Wait until the six and the earlier test e-mail are delivered to the test SMTP server.
    for (let i = 0; i < 100; i++) {
      const page = await api(sw.baseUrl, tenantKey, "GET", "/v1/messages?status=delivered&limit=100");
      if (page.items.length >= 7) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const page = await open("log");
    const rows = page.locator(`${log} tr[part="row"]`);
    await rows.first().waitFor();
    assert.equal(await rows.count(), 3);
    const first = await rows.allInnerTexts();
    await page.locator(`${log} #next`).click();
    await page.locator(`${log} [part="page"]`).filter({ hasText: "Page 2" }).waitFor();
    const second = await rows.allInnerTexts();
    assert.equal(second.length, 3);
    assert.equal(second.some((r) => first.includes(r)), false);
    await page.locator(`${log} #next`).click();
    await page.locator(`${log} [part="page"]`).filter({ hasText: "Page 3" }).waitFor();
    assert.equal(await rows.count(), 1); // seven messages: 3 + 3 + 1
    assert.equal(await page.locator(`${log} #next`).isDisabled(), true);
    await page.locator(`${log} #previous`).click();
    await page.locator(`${log} [part="page"]`).filter({ hasText: "Page 2" }).waitFor();

    await page.locator(`${log} #recipient`).fill("r2@customer.example");
    await page.locator(`${log} #recipient`).press("Enter");
    await page.locator(`${log} [part="page"]`).filter({ hasText: "Page 1" }).waitFor();
    await until(async () => (await rows.count()) === 1, "one row for r2");
    assert.match(await rows.first().innerText(), /Order 2 shipped/);
    await page.screenshot({ path: shots + "log-search.png", fullPage: true });

    await page.locator(`${log} #recipient`).fill("");
    await page.locator(`${log} #status`).selectOption("delivered");
    await until(async () => (await rows.count()) === 3, "three delivered rows");
    await page.locator(`${log} #status`).selectOption("failed");
    await page.locator(`${log} td`).filter({ hasText: "No messages." }).waitFor();
    await page.locator(`${log} #status`).selectOption("");
    await rows.first().waitFor();

    await page.locator(`${log} button[part="open-message"]`).first().click();
    const events = page.locator(`${log} li[part="event"]`);
    await events.first().waitFor();
    const types = await events.evaluateAll((els) => els.map((e) => e.dataset.type));
    assert.deepEqual([types[0], types.at(-1)], ["queued", "delivered"]);
    assert.ok(types.includes("attempt"), types.join(","));
    assert.match(await page.locator(`${log} li[data-type="delivered"]`).innerText(), /250/);
    await page.screenshot({ path: shots + "log-timeline.png", fullPage: true });
    assert.deepEqual(await axe(page), []);
    // Keyboard: focus went to the message's heading; Shift+Tab reaches "Back", Enter returns
    // to the list with focus on the message that was opened.
    assert.equal(await page.evaluate(() => document.activeElement.shadowRoot.activeElement.id), "detail-title");
    await page.keyboard.press("Shift+Tab");
    assert.equal(await page.evaluate(() => document.activeElement.shadowRoot.activeElement.id), "back");
    await page.keyboard.press("Enter");
    await rows.first().waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.shadowRoot.activeElement.getAttribute("part")), "open-message");
    await page.keyboard.press("Enter");
    await events.first().waitFor();
    await page.close();
  });

  it("speaks German with German dates", async () => {
    const page = await open("log", "de");
    await page.locator(`${log} tr[part="row"]`).first().waitFor();
    assert.equal(await page.locator(`${log} #next`).innerText(), "Nächste Seite");
    assert.match(await page.locator(`${log} tr[part="row"]`).first().innerText(), /Zugestellt/);
    assert.deepEqual(await axe(page), []);
    await page.screenshot({ path: shots + "log-de.png", fullPage: true });
    await page.close();
  });
});

describe("message log, deferred", () => {
  const log = "sendwerk-message-log";

  it("shows a deferred message's reply and next retry", async () => {
    await api(sw.baseUrl, tenantKey, "POST", "/v1/messages", { from: SENDER, to: ["greylist@customer.example"], subject: "Greylisted", text: "Later." });
    await until(async () => (await api(sw.baseUrl, tenantKey, "GET", "/v1/messages?status=deferred")).items.length === 1, "a deferred message", 15_000);
    const page = await open("log");
    await page.locator(`${log} tr[part="row"]`).first().waitFor();
    await page.locator(`${log} #status`).selectOption("deferred");
    await until(async () => (await page.locator(`${log} tr[part="row"]`).count()) === 1, "one deferred row");
    await page.locator(`${log} button[part="open-message"]`).click();
    const deferred = page.locator(`${log} li[data-type="deferred"]`);
    await deferred.waitFor();
    const text = await deferred.innerText();
    assert.match(text, /451 4\.7\.1 Greylisted/);
    assert.match(text, /Next attempt/);
    assert.match(await page.locator(`${log} li[data-type="attempt"]`).innerText(), /451/);
    await page.screenshot({ path: shots + "log-deferred.png", fullPage: true });
    await page.close();
  });
});

describe("/dev/elements", () => {
  it("serves the demo page with the embedded bundle in development", async () => {
    const page = await browser.context.newPage();
    const res = await page.goto(`${sw.baseUrl}/dev/elements`);
    assert.equal(res.status(), 200);
    await page.locator("#api-key").fill(tenantKey);
    await page.locator("#api-key").press("Enter");
    await page.locator(`${settings} [data-password-set="true"]`).waitFor();
    await page.locator("sendwerk-domain-setup [part=\"status\"]").waitFor();
    await page.locator("sendwerk-message-log tr[part=\"row\"]").first().waitFor();
    await page.screenshot({ path: shots + "dev-elements.png", fullPage: true });
    await page.close();
  });
});

async function until(cond, what, ms = 10_000) {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function unusedPort() {
  const { createServer } = await import("node:net");
  const s = createServer();
  await new Promise((r) => s.listen(0, "127.0.0.1", r));
  const port = s.address().port;
  await new Promise((r) => s.close(r));
  return port;
}

// Runs the README's settings-page example against the live server, as a page would.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { loadSendingSettings, saveSendingSettings, sendTestEmail, testSendingSettings } from "../examples/settings-page.js";
import { newTenant } from "./helpers.js";
import { startSmtpServer, type SmtpServer } from "./smtp-server.js";

let smtp: SmtpServer;
beforeAll(async () => {
  smtp = await startSmtpServer();
});
afterAll(async () => {
  await smtp.close();
});

describe("settings page example", () => {
  it("loads, tests, saves, reloads and sends a test e-mail", async () => {
    const { client } = await newTenant("Settings GmbH", ["manage"]);
    const first = await loadSendingSettings(client);
    expect(first.connector).toBeUndefined();
    expect(first.form.mode).toBe("platform");

    const form = { ...first.form, mode: "own" as const, host: "", port: smtp.port, security: "none" as const, fromEmail: "noreply@settings.example", fromName: "Settings" };
    const invalid = await testSendingSettings(client, form);
    expect(invalid.value).toBeUndefined();
    expect(invalid.fields).toHaveProperty(["smtp.host"]);
    expect(invalid.message).toBe("Please correct the marked fields.");

    form.host = "127.0.0.1";
    const tested = await testSendingSettings(client, form);
    expect(tested.value?.ok).toBe(true);
    expect(tested.message).toBe("Connection works.");

    const saved = await saveSendingSettings(client, first.connector, form);
    expect(saved.fields).toEqual({});
    expect(saved.value?.kind).toBe("smtp");

    const again = await loadSendingSettings(client);
    expect(again.connector?.id).toBe(saved.value!.id);
    expect(again.form).toMatchObject({ mode: "own", host: "127.0.0.1", port: smtp.port, security: "none", fromName: "Settings" });

    const renamed = await saveSendingSettings(client, again.connector, { ...again.form, fromName: "Settings Team" });
    expect(renamed.value?.id).toBe(saved.value!.id);
    expect(renamed.value?.default_sender.name).toBe("Settings Team");

    const sent = await sendTestEmail(client, renamed.value!, "it@settings.example");
    expect(sent.value?.ok).toBe(true);
    expect(sent.message).toMatch(/^Accepted by the server/);
    const received = smtp.messages.find((m) => m.to.includes("it@settings.example"));
    expect(received?.data).toContain("Settings Team");
  });

  it("is the code the README shows", () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    const block = /<!-- settings-page:start -->\s*```ts\n([\s\S]*?)```\s*<!-- settings-page:end -->/.exec(readme);
    expect(block, "README.md lacks the settings-page block").not.toBeNull();
    expect(block![1]).toBe(readFileSync(new URL("../examples/settings-page.ts", import.meta.url), "utf8"));
  });
});

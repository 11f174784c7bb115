import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { paginate, ProblemType, unwrap, type Message } from "@sendwerk/client";
import { newTenant } from "./helpers.js";
import { startSmtpServer, type SmtpServer } from "./smtp-server.js";

let smtp: SmtpServer;
beforeAll(async () => {
  smtp = await startSmtpServer();
});
afterAll(async () => {
  await smtp.close();
});

describe("domains", () => {
  it("adds a domain and reads the DNS records to publish", async () => {
    const { client } = await newTenant("Domains GmbH", ["manage"]);
    const domain = await unwrap(client.POST("/v1/domains", { body: { domain: "bücher.example" } }));
    expect(domain.id).toMatch(/^dom_/);
    expect(domain.domain).toBe("xn--bcher-kva.example");
    expect(domain.domain_unicode).toBe("bücher.example");
    expect(domain.status).toBe("pending");
    expect(domain.send_allowed).toBe(false);

    const records = await unwrap(client.GET("/v1/domains/{domain_id}/records", { params: { path: { domain_id: domain.id } } }));
    // The operation answers JSON or, with ?format=zone, text: the type is the union of both.
    if (typeof records === "string") throw new Error("expected the JSON form");
    const byPurpose = Object.fromEntries(records.records.map((r) => [r.purpose, r]));
    expect(byPurpose.ownership).toMatchObject({ type: "TXT", requirement: "required", fqdn: "xn--bcher-kva.example" });
    expect(byPurpose.ownership!.value).toMatch(/^sendwerk-verification=[0-9a-f]+$/);
    expect(byPurpose.dkim).toMatchObject({ requirement: "required", fqdn: `${domain.dkim_selector}._domainkey.xn--bcher-kva.example` });
    expect(byPurpose.dkim!.value).toMatch(/^v=DKIM1; k=rsa; p=/);

    // The same records as a zone-file snippet: a text/plain response, read as text.
    const zone = await client.GET("/v1/domains/{domain_id}/records", {
      params: { path: { domain_id: domain.id }, query: { format: "zone" } },
      parseAs: "text",
    });
    expect(zone.response.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(zone.data).toMatch(new RegExp(`^xn--bcher-kva\\.example\\.\\s+3600 IN TXT "${byPurpose.ownership!.value}"$`, "m"));

    const twice = await client.POST("/v1/domains", { body: { domain: "BÜCHER.example" } });
    expect(twice.response.status).toBe(409);
    expect(twice.error?.type).toBe(ProblemType.Conflict);
  });
});

describe("messages", () => {
  it("sends a message, follows it to delivered and pages through the log", async () => {
    const { client } = await newTenant("Messages GmbH", ["manage", "read", "messages:send"]);
    const connector = await unwrap(
      client.POST("/v1/connectors", {
        body: { name: "relay", kind: "smtp", smtp: { host: "127.0.0.1", port: smtp.port, security: "none" }, default_sender: { email: "noreply@messages.example" } },
      }),
    );

    // An smtp connector may send from its own default sender before any domain is verified.
    const sent = await client.POST("/v1/messages", {
      params: { header: { "Idempotency-Key": "welcome-42" } },
      body: { from: { email: "noreply@messages.example", name: "Messages" }, to: ["jane@customer.example"], subject: "Welcome", text: "Hello Jane.", tags: ["welcome"] },
    });
    expect(sent.response.status).toBe(202);
    const id = sent.data!.id;

    let message: Message | undefined;
    for (let i = 0; i < 100 && message?.status !== "delivered"; i++) {
      message = await unwrap(client.GET("/v1/messages/{message_id}", { params: { path: { message_id: id } } }));
      if (message.status !== "delivered") await new Promise((r) => setTimeout(r, 100));
    }
    expect(message?.status).toBe("delivered");
    expect(message?.connector_id).toBe(connector.id);
    expect(smtp.messages.some((m) => m.to.includes("jane@customer.example") && m.data.includes("Subject: Welcome"))).toBe(true);

    const batch = await unwrap(
      client.POST("/v1/messages/batch", {
        body: {
          messages: [1, 2, 3, 4].map((n) => ({ from: "noreply@messages.example", to: [`user${n}@customer.example`], subject: `Report ${n}`, text: "Weekly report.", tags: ["report"] })),
        },
      }),
    );
    expect(batch.accepted).toBe(4);

    const subjects: string[] = [];
    for await (const m of paginate(client, "/v1/messages", { params: { query: { tag: "report", limit: 3 } } })) {
      subjects.push(m.subject);
    }
    expect(subjects.sort()).toEqual(["Report 1", "Report 2", "Report 3", "Report 4"]);

    // A sender the tenant may not use is a validation problem naming the field.
    const refused = await client.POST("/v1/messages", { body: { from: "someone@elsewhere.example", to: ["a@b.example"], subject: "x", text: "x" } });
    expect(refused.response.status).toBe(422);
    expect(refused.error?.errors?.map((e) => e.field)).toContain("from.email");
  });
});

import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { createServer, type IncomingHttpHeaders } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { Webhook } from "standardwebhooks";
import { unwrap, verifyWebhook, WebhookVerificationError, type Event } from "@sendwerk/client";
import { describe as describeEvent, webhookReceiver } from "../examples/webhook-receiver.js";
import { newTenant } from "./helpers.js";

interface Received {
  body: string;
  headers: IncomingHttpHeaders;
}

const servers: { close(): void }[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

/** A receiver on loopback that keeps every request as it arrived. */
async function recorder(): Promise<{ url: string; got: Received[] }> {
  const got: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      got.push({ body: Buffer.concat(chunks).toString("utf8"), headers: req.headers });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  servers.push(server);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`, got };
}

async function until<T>(f: () => T | undefined, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Headers as standardwebhooks wants them: a plain string record. */
function plain(h: IncomingHttpHeaders): Record<string, string> {
  return Object.fromEntries(Object.entries(h).map(([k, v]) => [k, Array.isArray(v) ? v.join(", ") : (v ?? "")]));
}

async function pausedConnector(client: Awaited<ReturnType<typeof newTenant>>["client"]) {
  const c = await unwrap(
    client.POST("/v1/connectors", {
      body: { name: "Office relay", kind: "smtp", smtp: { host: "127.0.0.1", port: 2525, security: "none" }, default_sender: { email: "noreply@hooks.example" } },
    }),
  );
  await unwrap(client.PATCH("/v1/connectors/{connector_id}", { params: { path: { connector_id: c.id } }, body: { status: "paused" } }));
  return c;
}

describe("webhooks", () => {
  it("signs deliveries so the independent standardwebhooks package verifies them", async () => {
    const { client } = await newTenant("Hooks");
    const rec = await recorder();
    const hook = await unwrap(client.POST("/v1/webhooks", { body: { url: rec.url, event_types: ["connector.paused"] } }));
    expect(hook.secret).toMatch(/^whsec_/);

    const connector = await pausedConnector(client);
    const got = await until(() => rec.got[0]);
    const verified = new Webhook(hook.secret).verify(got.body, plain(got.headers)) as Event;
    expect(verified.type).toBe("connector.paused");
    expect(got.headers["webhook-id"]).toBe(verified.id);

    // Our helper agrees, and types the event.
    const event = await verifyWebhook(got.body, got.headers, hook.secret);
    if (event.type !== "connector.paused") throw new Error(`unexpected ${event.type}`);
    expect(event.connector_id).toBe(connector.id);
    expect(event.data.reason).toBe("manual");

    // A changed body or another secret fails, in both.
    const tampered = got.body.replace("paused", "resumed");
    expect(() => new Webhook(hook.secret).verify(tampered, plain(got.headers))).toThrow();
    await expect(verifyWebhook(tampered, got.headers, hook.secret)).rejects.toBeInstanceOf(WebhookVerificationError);
    const other = "whsec_" + Buffer.alloc(32, 7).toString("base64");
    await expect(verifyWebhook(got.body, got.headers, other)).rejects.toBeInstanceOf(WebhookVerificationError);
    // An old timestamp is refused.
    await expect(verifyWebhook(got.body, got.headers, hook.secret, { now: () => new Date(Date.now() + 3_600_000) })).rejects.toThrow(/too far/);
  });

  it("sends both signatures during a rotation's overlap", async () => {
    const { client } = await newTenant("Rotate");
    const rec = await recorder();
    const hook = await unwrap(client.POST("/v1/webhooks", { body: { url: rec.url } }));
    const rotated = await unwrap(
      client.POST("/v1/webhooks/{webhook_id}/rotate-secret", { params: { path: { webhook_id: hook.id } }, body: { overlap_seconds: 600 } }),
    );
    const answer = await unwrap(client.POST("/v1/webhooks/{webhook_id}/test", { params: { path: { webhook_id: hook.id } } }));
    expect(answer.status_code).toBe(204);
    const got = rec.got[0]!;
    expect(String(got.headers["webhook-signature"]).split(" ")).toHaveLength(2);
    for (const secret of [hook.secret, rotated.secret]) {
      expect((new Webhook(secret).verify(got.body, plain(got.headers)) as Event).type).toBe("webhook.test");
      expect((await verifyWebhook(got.body, got.headers, secret)).type).toBe("webhook.test");
    }
  });

  it("runs the README's receiver example against real deliveries", async () => {
    const { client } = await newTenant("Receiver");
    const events: Event[] = [];
    const server = webhookReceiver("placeholder", (e) => events.push(e));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    servers.push(server);
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const hook = await unwrap(client.POST("/v1/webhooks", { body: { url } }));
    // Unsigned with the endpoint's secret: refused with 401, logged as a failed attempt.
    const refused = await unwrap(client.POST("/v1/webhooks/{webhook_id}/test", { params: { path: { webhook_id: hook.id } } }));
    expect(refused.status_code).toBe(401);
    server.close();

    const good = webhookReceiver(hook.secret, (e) => events.push(e));
    await new Promise<void>((r) => good.listen(0, "127.0.0.1", r));
    servers.push(good);
    await unwrap(
      client.PATCH("/v1/webhooks/{webhook_id}", {
        params: { path: { webhook_id: hook.id } },
        body: { url: `http://127.0.0.1:${(good.address() as AddressInfo).port}/` },
      }),
    );
    await pausedConnector(client);
    const paused = await until(() => events.find((e) => e.type === "connector.paused"));
    expect(describeEvent(paused)).toBe("connector Office relay paused: manual");
  });

  it("reads the same typed events from the feed", async () => {
    const { client } = await newTenant("Feed");
    const connector = await pausedConnector(client);
    // Listed once no older transaction can still add an event before it: poll briefly.
    let feed = await unwrap(client.GET("/v1/events", { params: { query: { resource_id: connector.id, type: ["connector.paused"] } } }));
    for (let i = 0; i < 50 && feed.items.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      feed = await unwrap(client.GET("/v1/events", { params: { query: { resource_id: connector.id, type: ["connector.paused"] } } }));
    }
    expect(feed.items).toHaveLength(1);
    const e = feed.items[0]!;
    if (e.type !== "connector.paused") throw new Error(e.type);
    expect(e.data.name).toBe("Office relay");
    const next = await unwrap(client.GET("/v1/events", { params: { query: { cursor: feed.next_cursor } } }));
    expect(next.items).toHaveLength(0);
    expect(next.next_cursor).toBe(feed.next_cursor);
  });

  it("is the receiver the README shows", () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    const block = /<!-- webhook-receiver:start -->\s*```ts\n([\s\S]*?)```\s*<!-- webhook-receiver:end -->/.exec(readme);
    expect(block, "README.md lacks the webhook-receiver block").not.toBeNull();
    expect(block![1]).toBe(readFileSync(new URL("../examples/webhook-receiver.ts", import.meta.url), "utf8"));
  });
});

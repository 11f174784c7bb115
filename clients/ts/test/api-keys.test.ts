import { describe, expect, it } from "vitest";
import { createSendwerkClient, paginate, unwrap, type ApiKey } from "@sendwerk/client";
import { admin, baseUrl, newTenant } from "./helpers.js";

describe("tenants and API keys", () => {
  it("creates a tenant and a key with the admin token, and the key works", async () => {
    const a = admin();
    const { data: tenant, error, response } = await a.POST("/v1/tenants", { body: { name: "Acme GmbH", monthly_quota: 100000 } });
    expect(error).toBeUndefined();
    expect(response.status).toBe(201);
    expect(tenant!.id).toMatch(/^ten_/);
    expect(tenant!.monthly_quota).toBe(100000);

    const created = await unwrap(
      a.POST("/v1/tenants/{tenant_id}/api-keys", {
        params: { path: { tenant_id: tenant!.id } },
        body: { name: "backend", scopes: ["read", "manage"] },
      }),
    );
    expect(created.secret).toMatch(/^sw_/);
    expect(created.secret.startsWith(created.prefix)).toBe(true);
    expect(created.status).toBe("active");

    const client = createSendwerkClient({ baseUrl, token: created.secret });
    const me = await unwrap(client.GET("/v1/me"));
    expect(me.tenant.id).toBe(tenant!.id);
    expect(me.api_key.id).toBe(created.id);
    expect(me.api_key.scopes).toEqual(["read", "manage"]);
    expect(me.api_key).not.toHaveProperty("secret");
  });

  it("lets a tenant create, list and revoke its own keys", async () => {
    const { client, key } = await newTenant("Keys Ltd", ["manage"]);
    const readOnly = await unwrap(client.POST("/v1/api-keys", { body: { name: "frontend", scopes: ["read"], allowed_cidrs: ["127.0.0.0/8"] } }));
    expect(readOnly.allowed_cidrs).toEqual(["127.0.0.0/8"]);

    const listed = await unwrap(client.GET("/v1/api-keys"));
    expect(listed.items.map((k) => k.id)).toEqual([key.id, readOnly.id]);
    expect(listed.next_cursor).toBeUndefined();

    // The new key works with a token function, the way a page reads it from storage.
    let calls = 0;
    const reader = createSendwerkClient({ baseUrl, token: () => (calls++, readOnly.secret) });
    expect((await unwrap(reader.GET("/v1/me"))).api_key.name).toBe("frontend");
    expect(calls).toBe(1);

    const revoked = await unwrap(client.DELETE("/v1/api-keys/{key_id}", { params: { path: { key_id: readOnly.id } } }));
    expect(revoked.status).toBe("revoked");
    const after = await reader.GET("/v1/me");
    expect(after.response.status).toBe(401);
  });

  it("pages through a list with next_cursor", async () => {
    const { client, key } = await newTenant("Pages AG", ["manage"]);
    const ids = [key.id];
    for (let i = 0; i < 4; i++) {
      ids.push((await unwrap(client.POST("/v1/api-keys", { body: { name: `key-${i}`, scopes: ["read"] } }))).id);
    }

    // By hand: pass next_cursor back as cursor until it is absent.
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await unwrap(client.GET("/v1/api-keys", { params: { query: { limit: 2, cursor } } }));
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((k) => k.id));
      cursor = page.next_cursor;
      pages++;
    } while (cursor);
    expect(seen).toEqual(ids);
    expect(pages).toBe(3);

    // With the helper.
    const all: ApiKey[] = [];
    for await (const k of paginate(client, "/v1/api-keys", { params: { query: { limit: 2 } } })) {
      all.push(k);
    }
    expect(all.map((k) => k.id)).toEqual(ids);

    // Paths with path parameters take them in params, like any call.
    const tenantId = (await unwrap(client.GET("/v1/me"))).tenant.id;
    const viaAdmin: string[] = [];
    for await (const k of paginate(admin(), "/v1/tenants/{tenant_id}/api-keys", { params: { path: { tenant_id: tenantId }, query: { limit: 3 } } })) {
      viaAdmin.push(k.id);
    }
    expect(viaAdmin).toEqual(ids);
  });
});

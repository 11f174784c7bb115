import { inject } from "vitest";
import { createSendwerkClient, unwrap, type Scope, type SendwerkClient } from "@sendwerk/client";

export const baseUrl = inject("baseUrl");

/** admin is a client with the operator's admin token. */
export function admin(): SendwerkClient {
  return createSendwerkClient({ baseUrl, token: inject("adminToken") });
}

/** newTenant creates a tenant and an API key with the scopes; it returns the key's client. */
export async function newTenant(name: string, scopes: Scope[] = ["read", "manage", "messages:send"]) {
  const a = admin();
  const tenant = await unwrap(a.POST("/v1/tenants", { body: { name } }));
  const key = await unwrap(a.POST("/v1/tenants/{tenant_id}/api-keys", { params: { path: { tenant_id: tenant.id } }, body: { name: "test", scopes } }));
  return { tenant, key, client: createSendwerkClient({ baseUrl, token: key.secret }) };
}

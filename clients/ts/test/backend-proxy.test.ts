// Runs the backend-proxy recipe: the browser-side client has no token; the proxy adds it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { createSendwerkClient, ProblemType } from "@sendwerk/client";
import { sendwerkProxy } from "../examples/backend-proxy.js";
import { baseUrl, newTenant } from "./helpers.js";

let proxy: Server;
let proxyUrl: string;
let tenantName: string;

beforeAll(async () => {
  const { tenant, key } = await newTenant("Proxy GmbH", ["read", "manage"]);
  tenantName = tenant.name;
  proxy = sendwerkProxy({
    sendwerkUrl: baseUrl,
    // A real backend reads its session cookie here; the test signs in whoever sends it.
    apiKeyFor: async (req) => (req.headers.cookie === "session=jane" ? key.secret : undefined),
    allow: [["GET", "/v1/me"], ["GET", "/v1/connectors"], ["POST", "/v1/connector-tests"]],
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}/sendwerk`;
});
afterAll(() => new Promise<void>((resolve) => proxy.close(() => resolve())));

describe("backend proxy recipe", () => {
  const page = () => createSendwerkClient({ baseUrl: proxyUrl, headers: { cookie: "session=jane" } });

  it("forwards allowed calls with the tenant's key, which the page never sees", async () => {
    const { data } = await page().GET("/v1/me");
    expect(data?.tenant.name).toBe(tenantName);
    const { error, response } = await page().POST("/v1/connector-tests", { body: { name: "x", kind: "smtp", default_sender: { email: "a@b.example" } } });
    expect(response.status).toBe(422);
    expect(error?.type).toBe(ProblemType.Validation);
  });

  it("refuses what is not allowed and who is not signed in", async () => {
    const { response } = await page().GET("/v1/api-keys");
    expect(response.status).toBe(404);
    const anonymous = createSendwerkClient({ baseUrl: proxyUrl });
    expect((await anonymous.GET("/v1/me")).response.status).toBe(401);
  });
});

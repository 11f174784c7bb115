import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { createSendwerkClient, fieldErrors, isProblem, paginate, ProblemType, SendwerkError, unwrap, type Problem } from "@sendwerk/client";
import { admin, baseUrl, newTenant } from "./helpers.js";

// describe is how an application would turn a problem into a message: by its type.
function describeProblem(p: Problem): string {
  switch (p.type) {
    case ProblemType.Validation:
      return "fix: " + Object.keys(fieldErrors(p)).sort().join(", ");
    case ProblemType.Unauthorized:
      return "sign in again";
    case ProblemType.Forbidden:
      return "not allowed";
    case ProblemType.NotFound:
      return "gone";
    default:
      return "try later";
  }
}

describe("problem documents", () => {
  it("names every invalid field of a validation problem", async () => {
    const { client } = await newTenant("Validation GmbH", ["manage"]);
    const { data, error, response } = await client.POST("/v1/api-keys", {
      // @ts-expect-error "fly" is not a scope: the compiler catches it, the server does too.
      body: { name: "", scopes: ["fly"] },
    });
    expect(data).toBeUndefined();
    expect(response.status).toBe(422);
    expect(response.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(isProblem(error)).toBe(true);
    expect(error!.type).toBe(ProblemType.Validation);
    expect(fieldErrors(error)).toEqual({
      name: expect.any(String),
      "scopes[0]": "must be one of: messages:send, read, manage",
    });
    expect(describeProblem(error!)).toBe("fix: name, scopes[0]");
    expect(error!.request_id).toBe(response.headers.get("x-request-id"));
  });

  it("branches on unauthorized, forbidden and not-found", async () => {
    const anonymous = createSendwerkClient({ baseUrl });
    const noKey = await anonymous.GET("/v1/me");
    expect(noKey.response.status).toBe(401);
    expect(describeProblem(noKey.error!)).toBe("sign in again");

    const { client: reader } = await newTenant("Reader KG", ["read"]);
    const forbidden = await reader.POST("/v1/api-keys", { body: { name: "x", scopes: ["read"] } });
    expect(forbidden.response.status).toBe(403);
    expect(forbidden.error!.type).toBe(ProblemType.Forbidden);
    expect(forbidden.error!.detail).toContain("manage");

    const missing = await reader.GET("/v1/connectors/{connector_id}", { params: { path: { connector_id: "con_06h08583y1r596y07grz39yhqm" } } });
    expect(missing.response.status).toBe(404);
    expect(describeProblem(missing.error!)).toBe("gone");

    // A tenant API key on an operator route is refused like no key at all.
    const operatorRoute = await reader.GET("/v1/tenants");
    expect(operatorRoute.error!.type).toBe(ProblemType.Unauthorized);
  });

  it("throws SendwerkError from unwrap and paginate", async () => {
    const a = admin();
    const err = await unwrap(a.GET("/v1/tenants/{tenant_id}", { params: { path: { tenant_id: "ten_01jd3v8m5q0c7s2k9x4r6t1w3y" } } })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SendwerkError);
    const se = err as SendwerkError;
    expect(se.status).toBe(404);
    expect(se.is(ProblemType.NotFound)).toBe(true);
    expect(se.type).toBe(ProblemType.NotFound);

    const bad = paginate(a, "/v1/tenants", { params: { query: { limit: 1000 } } });
    const pageErr = await bad.next().catch((e: unknown) => e);
    expect(pageErr).toBeInstanceOf(SendwerkError);
    expect((pageErr as SendwerkError).status).toBe(400);
  });

  it("knows every problem type the server defines", () => {
    // The server's constants are the source; this fails when one is added there but not here.
    const goSource = readFileSync(new URL("../../../internal/httpapi/problem.go", import.meta.url), "utf8");
    const serverTypes = [...goSource.matchAll(/ProblemTypePrefix \+ "([a-z-]+)"/g)].map((m) => "urn:sendwerk:problem:" + m[1]);
    expect(serverTypes.length).toBeGreaterThan(5);
    expect(Object.values(ProblemType).sort()).toEqual(serverTypes.sort());
  });
});

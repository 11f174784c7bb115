import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer } from "node:net";
import { paginate, ProblemType, fieldErrors, unwrap, type Connector } from "@sendwerk/client";
import { newTenant } from "./helpers.js";
import { startSmtpServer, type SmtpServer } from "./smtp-server.js";

let smtp: SmtpServer;
beforeAll(async () => {
  smtp = await startSmtpServer();
});
afterAll(async () => {
  await smtp.close();
});

// closedPort returns a loopback port nothing listens on.
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe("connectors", () => {
  it("creates an SMTP connector, tests it and sends a test e-mail", async () => {
    const { client } = await newTenant("Connect GmbH");
    const connector = await unwrap(
      client.POST("/v1/connectors", {
        body: {
          name: "Office relay",
          kind: "smtp",
          smtp: { host: "127.0.0.1", port: smtp.port, security: "none" },
          default_sender: { email: "noreply@connect.example", name: "Connect" },
        },
      }),
    );
    expect(connector.id).toMatch(/^con_/);
    expect(connector.is_default).toBe(true);
    expect(connector.smtp?.password_set).toBe(false);
    expect(connector.warnings.length).toBeGreaterThan(0); // plain text is flagged

    const test = await unwrap(client.POST("/v1/connectors/{connector_id}/test", { params: { path: { connector_id: connector.id } } }));
    expect(test.ok).toBe(true);
    expect(test.steps.map((s) => s.name)).toContain("ehlo");
    expect(test.steps.find((s) => s.name === "ehlo")?.status).toBe("ok");

    const stored = await unwrap(client.GET("/v1/connectors/{connector_id}", { params: { path: { connector_id: connector.id } } }));
    expect(stored.last_test?.ok).toBe(true);

    const mail = await unwrap(
      client.POST("/v1/connectors/{connector_id}/test-email", { params: { path: { connector_id: connector.id } }, body: { to: "it@connect.example" } }),
    );
    expect(mail.ok).toBe(true);
    expect(mail.reply?.code).toBe(250);
    expect(smtp.messages.some((m) => m.to.includes("it@connect.example") && m.from === "noreply@connect.example")).toBe(true);
  });

  it("reports a refused connection as a result with a stable code", async () => {
    const { client } = await newTenant("Refused GmbH");
    const port = await closedPort();
    const result = await unwrap(
      client.POST("/v1/connector-tests", {
        body: { name: "draft", kind: "smtp", smtp: { host: "127.0.0.1", port, security: "none" }, default_sender: { email: "a@refused.example" } },
      }),
    );
    expect(result.ok).toBe(false);
    expect(result.code).toBe("tcp.refused");
    expect(result.steps.find((s) => s.status === "failed")?.name).toBe("connect");
  });

  it("names invalid connector fields", async () => {
    const { client } = await newTenant("Invalid GmbH");
    const { error, response } = await client.POST("/v1/connectors", {
      body: { name: "x", kind: "smtp", smtp: { host: "mail.invalid.example", port: 70000, security: "none" }, default_sender: { email: "a@b.example" } },
    });
    expect(response.status).toBe(422);
    expect(error?.type).toBe(ProblemType.Validation);
    expect(Object.keys(fieldErrors(error))).toContain("smtp.port");
  });

  it("updates, lists and deletes connectors", async () => {
    const { client } = await newTenant("Lifecycle GmbH");
    const made: Connector[] = [];
    for (const name of ["first", "second", "third"]) {
      made.push(
        await unwrap(
          client.POST("/v1/connectors", {
            body: { name, kind: "smtp", smtp: { host: "smtp.lifecycle.example", port: 587, security: "starttls" }, default_sender: { email: "n@lifecycle.example" } },
          }),
        ),
      );
    }
    const paused = await unwrap(
      client.PATCH("/v1/connectors/{connector_id}", { params: { path: { connector_id: made[1]!.id } }, body: { status: "paused", is_default: true } }),
    );
    expect(paused.status).toBe("paused");
    expect(paused.is_default).toBe(true);

    const names: string[] = [];
    for await (const c of paginate(client, "/v1/connectors", { params: { query: { limit: 1 } } })) {
      names.push(`${c.name}${c.is_default ? "*" : ""}`);
    }
    expect(names).toEqual(["first", "second*", "third"]);

    const del = await client.DELETE("/v1/connectors/{connector_id}", { params: { path: { connector_id: made[0]!.id } } });
    expect(del.response.status).toBe(204);
    const gone = await client.GET("/v1/connectors/{connector_id}", { params: { path: { connector_id: made[0]!.id } } });
    expect(gone.error?.type).toBe(ProblemType.NotFound);
  });
});

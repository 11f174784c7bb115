// A tenant's "Sending" settings page: use the platform's relay or your own SMTP server,
// test the connection before saving, save, and send a test e-mail. Framework-free: call
// these from React, Vue or a form's submit handler, and render what they return.
import {
  createSendwerkClient,
  fieldErrors,
  ProblemType,
  unwrap,
  type ConnectionTest,
  type Connector,
  type ConnectorCreate,
  type Problem,
  type SendwerkClient,
  type SmtpSecurity,
  type TestEmailResult,
} from "@sendwerk/client";

/** The form's state. `password` stays empty unless the user types a new one. */
export interface SendingForm {
  mode: "platform" | "own";
  host: string;
  port: number;
  security: SmtpSecurity;
  username: string;
  password: string;
  fromEmail: string;
  fromName: string;
}

/** What a form submit shows: field errors next to inputs, or one message on top. */
export interface Outcome<T> {
  value?: T;
  fields: Record<string, string>;
  message?: string;
}

// The browser should not hold a `manage` key: serve this page from your backend (or proxy
// /v1 through it) and give the client the tenant's key there.
export function sendwerkFor(apiKey: string): SendwerkClient {
  return createSendwerkClient({ baseUrl: "https://sendwerk.example.com", token: apiKey });
}

/** loadSendingSettings fills the form from the tenant's default connector, if it has one. */
export async function loadSendingSettings(client: SendwerkClient): Promise<{ connector?: Connector; form: SendingForm }> {
  const page = await unwrap(client.GET("/v1/connectors", { params: { query: { limit: 100 } } }));
  const connector = page.items.find((c) => c.is_default);
  const form: SendingForm = {
    mode: connector?.kind === "smtp" ? "own" : "platform",
    host: connector?.smtp?.host ?? "",
    port: connector?.smtp?.port ?? 587,
    security: connector?.smtp?.security ?? "starttls",
    username: connector?.smtp?.username ?? "",
    password: "",
    fromEmail: connector?.default_sender.email ?? "",
    fromName: connector?.default_sender.name ?? "",
  };
  return { connector, form };
}

function toConnector(form: SendingForm): ConnectorCreate {
  const sender = { email: form.fromEmail, name: form.fromName || undefined };
  if (form.mode === "platform") {
    return { name: "Platform relay", kind: "platform", default_sender: sender, is_default: true };
  }
  return {
    name: `SMTP ${form.host}`,
    kind: "smtp",
    is_default: true,
    default_sender: sender,
    smtp: {
      host: form.host,
      port: form.port,
      security: form.security,
      username: form.username || undefined,
      password: form.password || undefined,
    },
  };
}

// outcome turns an API problem into what the form shows; validation problems name fields
// (`smtp.host`), everything else becomes one message.
function outcome<T>(problem: Problem): Outcome<T> {
  switch (problem.type) {
    case ProblemType.Validation:
      return { fields: fieldErrors(problem), message: "Please correct the marked fields." };
    case ProblemType.Unauthorized:
    case ProblemType.Forbidden:
      return { fields: {}, message: "Your session may not change these settings." };
    default:
      return { fields: {}, message: problem.detail ?? problem.title };
  }
}

/** testSendingSettings runs the staged connection test on the unsaved form. */
export async function testSendingSettings(client: SendwerkClient, form: SendingForm): Promise<Outcome<ConnectionTest>> {
  const { data, error } = await client.POST("/v1/connector-tests", { body: toConnector(form) });
  if (error) return outcome(error);
  // A failed connection is a result, not an error: show data.message and the failed step.
  return { value: data, fields: {}, message: data.ok ? "Connection works." : data.message };
}

/** saveSendingSettings creates the connector, or updates the current one in place. */
export async function saveSendingSettings(client: SendwerkClient, current: Connector | undefined, form: SendingForm): Promise<Outcome<Connector>> {
  const body = toConnector(form);
  if (current && current.kind === body.kind) {
    const { data, error } = await client.PATCH("/v1/connectors/{connector_id}", {
      params: { path: { connector_id: current.id } },
      body: { default_sender: body.default_sender, ...(body.smtp ? { smtp: { ...body.smtp, password: form.password || undefined } } : {}) },
    });
    return error ? outcome(error) : { value: data, fields: {}, message: "Saved." };
  }
  const { data, error } = await client.POST("/v1/connectors", { body });
  return error ? outcome(error) : { value: data, fields: {}, message: "Saved." };
}

/** sendTestEmail backs the "Send test e-mail" button. */
export async function sendTestEmail(client: SendwerkClient, connector: Connector, to: string): Promise<Outcome<TestEmailResult>> {
  const { data, error } = await client.POST("/v1/connectors/{connector_id}/test-email", {
    params: { path: { connector_id: connector.id } },
    body: { to },
  });
  if (error) return outcome(error);
  return { value: data, fields: {}, message: data.ok ? `Accepted by the server (${data.reply?.text ?? "250"}).` : data.message };
}

/**
 * @sendwerk/client is a typed client for the Sendwerk REST API. Types come from openapi.yaml
 * (openapi-typescript); requests go through openapi-fetch, so every path, parameter, body and
 * response is checked by the compiler and new operations appear when the spec grows.
 */
import createClient, { type Client, type ClientOptions, type Middleware } from "openapi-fetch";
import type { paths } from "./schema.js";

// Every schema as a named type (Connector, ApiKey, Problem, …) and every enum's values as an
// array (connectorKindValues, sMTPSecurityValues, …) for select inputs.
export * from "./schema.js";
export * from "./problem.js";
export { verifyWebhook, WebhookVerificationError, type VerifyOptions, type WebhookHeaders } from "./webhook.js";
export { paginate, type ListItem, type ListPath, type PageInit } from "./paginate.js";

/** SendwerkClient is an openapi-fetch client for the Sendwerk API: `client.GET("/v1/connectors")`. */
export type SendwerkClient = Client<paths>;

/** A bearer token, or a function returning one per request (for tokens that rotate). */
export type TokenSource = string | (() => string | undefined | Promise<string | undefined>);

/** Options for {@link createSendwerkClient}. */
export interface SendwerkClientOptions extends Omit<ClientOptions, "baseUrl"> {
  /** Where Sendwerk serves, without `/v1`: `https://sendwerk.example.com`. */
  baseUrl: string;
  /** A tenant API key (`sw_…`), or the operator's admin token for `/v1/tenants`. */
  token?: TokenSource;
}

/** createSendwerkClient returns a client that sends `Authorization: Bearer <token>` on every request. */
export function createSendwerkClient(options: SendwerkClientOptions): SendwerkClient {
  const { token, ...rest } = options;
  const client = createClient<paths>(rest);
  if (token !== undefined) {
    client.use(bearerAuth(token));
  }
  return client;
}

/** bearerAuth is the middleware behind `token`; add it yourself to a client made with openapi-fetch. */
export function bearerAuth(token: TokenSource): Middleware {
  return {
    async onRequest({ request }) {
      const value = typeof token === "function" ? await token() : token;
      if (value) {
        request.headers.set("Authorization", `Bearer ${value}`);
      }
      return request;
    },
  };
}

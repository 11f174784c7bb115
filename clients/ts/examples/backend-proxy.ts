// Keep the API key on your server: the browser talks to your backend, which checks its own
// session, adds the tenant's Sendwerk key and forwards the call. The page then uses
// createSendwerkClient({ baseUrl: "/sendwerk" }) with no token at all. Node's http and fetch
// only; the same few lines fit Express, Fastify, Next.js route handlers or Hono.
import { createServer, type IncomingMessage, type Server } from "node:http";

export interface ProxyOptions {
  /** Where Sendwerk serves, e.g. "https://sendwerk.example.com". */
  sendwerkUrl: string;
  /** Your session check: the signed-in user's tenant API key, or undefined to refuse. */
  apiKeyFor: (req: IncomingMessage) => Promise<string | undefined>;
  /** What the page may call: method and path prefix pairs. Forward only what it needs. */
  allow: Array<[method: string, pathPrefix: string]>;
}

/** sendwerkProxy serves /sendwerk/v1/… by forwarding to Sendwerk's /v1/… with the key added. */
export function sendwerkProxy(opts: ProxyOptions): Server {
  return createServer(async (req, res) => {
    const path = req.url?.startsWith("/sendwerk/v1/") ? req.url.slice("/sendwerk".length) : undefined;
    const allowed = path !== undefined && opts.allow.some(([m, p]) => m === req.method && path.startsWith(p));
    const key = allowed ? await opts.apiKeyFor(req) : undefined;
    if (!path || !allowed || !key) {
      res.writeHead(path && allowed ? 401 : 404).end();
      return;
    }
    const body = req.method === "GET" || req.method === "HEAD" ? undefined : await readBody(req);
    const upstream = await fetch(opts.sendwerkUrl + path, {
      method: req.method,
      headers: {
        Authorization: `Bearer ${key}`,
        ...(body ? { "Content-Type": req.headers["content-type"] ?? "application/json" } : {}),
        ...(req.headers["idempotency-key"] ? { "Idempotency-Key": String(req.headers["idempotency-key"]) } : {}),
      },
      body,
    });
    const headers: Record<string, string> = {};
    for (const name of ["content-type", "retry-after", "location"]) {
      const v = upstream.headers.get(name);
      if (v) headers[name] = v;
    }
    res.writeHead(upstream.status, headers).end(Buffer.from(await upstream.arrayBuffer()));
  });
}

// The API takes JSON bodies only, so the body is read as text.
async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

// The "host app" of the tests: it serves a page embedding one element, the bundle, axe-core,
// and the README's proxy (examples/proxy.mjs) at /api/sendwerk — the browser never holds a key.
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { sendwerkProxy } from "../../examples/proxy.mjs";

const file = (p) => fileURLToPath(new URL(p, import.meta.url));

const views = {
  settings: `<sendwerk-connector-settings base-url="/api/sendwerk" test-recipient="it@customer.example" egress-networks="192.0.2.0/24, 2001:db8:5e::/48"></sendwerk-connector-settings>`,
  domains: `<sendwerk-domain-setup base-url="/api/sendwerk"></sendwerk-domain-setup>`,
  log: `<sendwerk-message-log base-url="/api/sendwerk" page-size="3"></sendwerk-message-log>`,
};

function page(view, lang) {
  return `<!doctype html>
<html lang="${lang}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sendwerk elements: ${view}</title>
<style>body { margin: 0; padding: 1.5rem; max-width: 64rem; font-family: system-ui, sans-serif; }</style>
<script type="module" src="/sendwerk-elements.js"></script></head>
<body><main><h1>Acme account</h1>${views[view]}</main></body></html>`;
}

export async function startHost({ sendwerkUrl, apiKey }) {
  const proxy = sendwerkProxy(sendwerkUrl, () => apiKey);
  const bundle = readFileSync(file("../../dist/sendwerk-elements.js"));
  const axe = readFileSync(file("../../node_modules/axe-core/axe.min.js"));
  const server = createServer((req, res) => {
    const url = new URL(req.url, "http://host");
    if (url.pathname.startsWith("/api/sendwerk/")) return void proxy(req, res).catch(() => res.writeHead(502).end());
    if (url.pathname === "/sendwerk-elements.js") return void res.writeHead(200, { "content-type": "text/javascript" }).end(bundle);
    if (url.pathname === "/axe.min.js") return void res.writeHead(200, { "content-type": "text/javascript" }).end(axe);
    const view = url.pathname.slice(1) || "settings";
    if (!(view in views)) return void res.writeHead(404).end();
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(page(view, url.searchParams.get("lang") ?? "en"));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => server.close(() => r())) };
}

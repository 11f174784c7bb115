// The browser calls /api/sendwerk/v1/…; your backend adds the tenant's API key and forwards.
export const sendwerkProxy = (sendwerkUrl, apiKeyFor) => async (req, res) => {
  const key = await apiKeyFor(req); // your session → this user's tenant's key, or undefined
  if (!key || !req.url.startsWith("/api/sendwerk/v1/")) return res.writeHead(key ? 404 : 401).end();
  const body = req.method === "GET" || req.method === "HEAD" ? undefined : req;
  const up = await fetch(sendwerkUrl + req.url.slice("/api/sendwerk".length), { method: req.method, body, duplex: "half",
    headers: { authorization: `Bearer ${key}`, "content-type": req.headers["content-type"] ?? "application/json" } });
  const pass = ["content-type", "retry-after", "x-request-id"].filter((h) => up.headers.has(h));
  res.writeHead(up.status, Object.fromEntries(pass.map((h) => [h, up.headers.get(h)])));
  res.end(Buffer.from(await up.arrayBuffer()));
};

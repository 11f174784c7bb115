// Builds the sendwerk binary and runs `sendwerk serve` with its embedded PostgreSQL in a fresh
// data directory (as clients/ts's tests do), resolving DNS through the test's DNS server.
import { execFileSync, spawn } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const repoRoot = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../../..");

export async function startSendwerk({ dnsServer, env: extra = {} }) {
  const workDir = mkdtempSync(join(tmpdir(), "swel-"));
  chmodSync(workDir, 0o755); // the embedded PostgreSQL runs as the postgres user when we are root
  const binary = join(workDir, "sendwerk");
  execFileSync("go", ["build", "-o", binary, "./cmd/sendwerk"], { cwd: repoRoot, stdio: "inherit" });
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === "DATABASE_URL" || k.startsWith("SENDWERK_") || k.startsWith("PG")) continue;
    env[k] = v;
  }
  Object.assign(env, {
    SENDWERK_DATA_DIR: join(workDir, "data"),
    SENDWERK_HTTP_ADDR: "127.0.0.1:0",
    SENDWERK_SMTP_ADDR: "off",
    SENDWERK_SMTPS_ADDR: "off",
    // The test brings its own SMTP and DNS servers: no development mail catcher or DNS.
    SENDWERK_DEV_INBOX_ADDR: "off",
    SENDWERK_DEV_DNS_ADDR: "off",
    SENDWERK_LOG_LEVEL: "warn",
    SENDWERK_DNS_SERVERS: dnsServer,
    SENDWERK_DNS_TIMEOUT: "1s",
    SENDWERK_DOMAIN_MANUAL_CHECK_INTERVAL: "3s",
    ...extra,
  });
  const child = spawn(binary, ["serve"], { env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stderr.on("data", (c) => (output += c.toString()));
  const { baseUrl, adminToken } = await new Promise((ok, fail) => {
    let url = "";
    const timer = setTimeout(() => fail(new Error(`sendwerk serve printed no banner in 60s\n${output}`)), 60_000);
    child.once("exit", (code) => fail(new Error(`sendwerk serve exited with ${code}\n${output}`)));
    createInterface({ input: child.stdout }).on("line", (line) => {
      output += line + "\n";
      const u = /Sendwerk is serving on (http:\/\/\S+)/.exec(line);
      if (u) url = u[1];
      const t = /admin token: (\S+)/.exec(line);
      if (t && url) {
        clearTimeout(timer);
        ok({ baseUrl: url, adminToken: t[1] });
      }
    });
  });
  return {
    baseUrl,
    adminToken,
    output: () => output,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        const kill = setTimeout(() => child.kill("SIGKILL"), 20_000);
        await exited;
        clearTimeout(kill);
      }
      rmSync(workDir, { recursive: true, force: true });
    },
  };
}

/** api calls Sendwerk with a token and returns the parsed body; it throws on an error status. */
export async function api(baseUrl, token, method, path, body) {
  const res = await fetch(baseUrl + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

/** newTenant creates a tenant and an API key with the scopes the elements and the test need. */
export async function newTenant(sw, name) {
  const tenant = await api(sw.baseUrl, sw.adminToken, "POST", "/v1/tenants", { name });
  const key = await api(sw.baseUrl, sw.adminToken, "POST", `/v1/tenants/${tenant.id}/api-keys`, { name: "elements", scopes: ["read", "manage", "messages:send"] });
  return { tenant, key: key.secret };
}

// Builds the sendwerk binary and runs `sendwerk serve` once for the whole test run, with its
// embedded PostgreSQL in a fresh data directory, exactly as a developer's `make run` would.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    baseUrl: string;
    adminToken: string;
  }
}

const repoRoot = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../..");

let server: ChildProcess | undefined;
let workDir: string | undefined;
let output = "";

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  workDir = mkdtempSync(join(tmpdir(), "swts-"));
  // The embedded PostgreSQL runs as the postgres user when we are root: it must enter here.
  chmodSync(workDir, 0o755);
  const binary = join(workDir, "sendwerk");
  execFileSync("go", ["build", "-o", binary, "./cmd/sendwerk"], { cwd: repoRoot, stdio: "inherit" });

  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === "DATABASE_URL" || k.startsWith("SENDWERK_") || k.startsWith("PG")) continue;
    env[k] = v;
  }
  Object.assign(env, {
    SENDWERK_DATA_DIR: join(workDir, "data"),
    SENDWERK_HTTP_ADDR: "127.0.0.1:0",
    SENDWERK_SMTP_ADDR: "off",
    SENDWERK_SMTPS_ADDR: "off",
    SENDWERK_DEV_INBOX_ADDR: "127.0.0.1:0",
    SENDWERK_DEV_DNS_ADDR: "127.0.0.1:0",
    SENDWERK_LOG_LEVEL: "warn",
  });
  server = spawn(binary, ["serve"], { env, stdio: ["ignore", "pipe", "pipe"] });
  server.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const { baseUrl, adminToken } = await readBanner(server);
  project.provide("baseUrl", baseUrl);
  project.provide("adminToken", adminToken);

  return async () => {
    await stop(server);
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  };
}

// readBanner waits for "Sendwerk is serving on http://…" and "admin token: …" on stdout.
function readBanner(child: ChildProcess): Promise<{ baseUrl: string; adminToken: string }> {
  return new Promise((resolvePromise, reject) => {
    let baseUrl = "";
    const timer = setTimeout(() => reject(new Error(`sendwerk serve printed no banner in 60s\n${output}`)), 60_000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`sendwerk serve exited with ${code} before serving\n${output}`));
    });
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => {
      output += line + "\n";
      const url = /Sendwerk is serving on (http:\/\/\S+)/.exec(line);
      if (url) baseUrl = url[1]!;
      const token = /admin token: (\S+)/.exec(line);
      if (token && baseUrl) {
        clearTimeout(timer);
        resolvePromise({ baseUrl, adminToken: token[1]! });
      }
    });
  });
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null) return;
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  child.kill("SIGTERM");
  const timeout = setTimeout(() => child.kill("SIGKILL"), 30_000);
  await exited;
  clearTimeout(timeout);
}

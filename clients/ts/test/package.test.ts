// Installs the packed package into a fresh project, the way a frontend developer would, and
// checks the README's example compiles against it and the ESM build runs.
import { describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { baseUrl } from "./helpers.js";

const pkgDir = fileURLToPath(new URL("..", import.meta.url));
const npm = process.platform === "win32" ? "npm.cmd" : "npm";

describe("the npm package", () => {
  it("installs from a packed tarball, type-checks the README example and runs as ESM and as CommonJS", { timeout: 180_000 }, () => {
    const dir = mkdtempSync(join(tmpdir(), "swpkg-"));
    try {
      execFileSync(npm, ["pack", "--pack-destination", dir], { cwd: pkgDir, stdio: "pipe" });
      const tarball = readdirSync(dir).find((f) => f.endsWith(".tgz"));
      expect(tarball).toMatch(/^sendwerk-client-.*\.tgz$/);

      const app = join(dir, "app");
      execFileSync("mkdir", [app]);
      writeFileSync(join(app, "package.json"), JSON.stringify({ name: "settings-app", private: true, type: "module" }));
      execFileSync(npm, ["install", "--prefer-offline", "--no-audit", "--no-fund", join(dir, tarball!)], { cwd: app, stdio: "pipe" });

      copyFileSync(join(pkgDir, "examples", "settings-page.ts"), join(app, "settings-page.ts"));
      writeFileSync(
        join(app, "tsconfig.json"),
        JSON.stringify({
          compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, noEmit: true, lib: ["ES2022", "DOM"], types: [] },
          files: ["settings-page.ts"],
        }),
      );
      execFileSync(process.execPath, [join(pkgDir, "node_modules", "typescript", "bin", "tsc"), "-p", app], { cwd: app, stdio: "pipe" });

      const script = `import { createSendwerkClient, ProblemType } from "@sendwerk/client";
const c = createSendwerkClient({ baseUrl: ${JSON.stringify(baseUrl)} });
const health = await c.GET("/healthz");
const me = await c.GET("/v1/me");
console.log(JSON.stringify({ health: health.data.status, problem: me.error.type === ProblemType.Unauthorized }));`;
      writeFileSync(join(app, "check.mjs"), script);
      const out = execFileSync(process.execPath, ["check.mjs"], { cwd: app, encoding: "utf8" });
      expect(JSON.parse(out)).toEqual({ health: "ok", problem: true });

      // The same from CommonJS (require), as older Node back ends and Jest set-ups load it.
      const cjs = `const { createSendwerkClient, ProblemType, isProblem } = require("@sendwerk/client");
const c = createSendwerkClient({ baseUrl: ${JSON.stringify(baseUrl)} });
c.GET("/v1/me").then((me) => console.log(JSON.stringify({ problem: isProblem(me.error) && me.error.type === ProblemType.Unauthorized })));`;
      writeFileSync(join(app, "check.cjs"), cjs);
      const cjsOut = execFileSync(process.execPath, ["check.cjs"], { cwd: app, encoding: "utf8" });
      expect(JSON.parse(cjsOut)).toEqual({ problem: true });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

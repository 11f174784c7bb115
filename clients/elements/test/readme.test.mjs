// The README's proxies are the tested files, word for word.
import { it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

const read = (p) => readFileSync(new URL(p, import.meta.url), "utf8");
const block = (name) => {
  const m = new RegExp(`<!-- ${name}:start -->\\n\`\`\`\\w+\\n([\\s\\S]*?)\`\`\`\\n<!-- ${name}:end -->`).exec(read("../README.md"));
  assert.ok(m, `README has no ${name} block`);
  return m[1];
};

it("shows examples/proxy.mjs as the Node proxy", () => {
  assert.equal(block("proxy-node"), read("../examples/proxy.mjs"));
});

it("shows sendwerkProxy of examples/proxy-go as the Go proxy", () => {
  const go = read("../examples/proxy-go/main.go");
  const fn = go.slice(go.indexOf("// sendwerkProxy"));
  assert.equal(block("proxy-go"), fn);
});

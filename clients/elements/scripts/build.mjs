// Builds dist/index.js (ESM for bundlers; lit and @sendwerk/client stay imports) and
// dist/sendwerk-elements.js (one self-contained file for a plain <script type="module">,
// the file /dev/elements serves). @sendwerk/client is compiled from ../ts/src, so the
// TypeScript client needs no separate build step.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const common = {
  entryPoints: [here("../src/index.ts")],
  bundle: true,
  format: "esm",
  target: "es2022",
  legalComments: "eof",
  tsconfig: here("../tsconfig.build.json"),
  logLevel: "warning",
};

await build({ ...common, outfile: here("../dist/index.js"), external: ["lit", "lit/*", "@sendwerk/client"] });
await build({
  ...common,
  outfile: here("../dist/sendwerk-elements.js"),
  minify: true,
  alias: { "@sendwerk/client": here("../../ts/src/index.ts") },
});

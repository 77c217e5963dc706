import { defineConfig } from "tsup";

// One bundle per runtime entry (picked by export conditions in package.json)
// plus the bin. ESM and CJS, with declarations for both.
export default defineConfig([
  {
    entry: { node: "runtimes/node.ts", deno: "runtimes/deno.ts", bun: "runtimes/bun.ts" },
    format: ["esm", "cjs"],
    dts: true,
    target: "es2022",
    platform: "node",
    outDir: "dist",
    sourcemap: false,
    splitting: true,
  },
  {
    entry: { cli: "runtimes/cli.ts" },
    format: ["esm"],
    target: "es2022",
    platform: "node",
    outDir: "dist",
    splitting: false,
  },
]);

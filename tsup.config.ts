import { defineConfig, type Options } from "tsup";

// The CLI's commands that are imported only when run: each is built into a
// file of its own, which the bin imports at run time, rather than compiled
// with the bin on every start (unit.ts alone added about 0.7 ms of compiling
// to the echo server's start-up in Node).
const lazyCommands = ["unit", "run"];
// The same for the runtimes' halves of `run` (runtimes/_run_*.ts), which the
// shims import on first use: about 19 KB the echo server need not parse.
const lazyRuntimeParts = ["_run_node", "_run_ffi"];

// The bin's plugins: the bundle with every shim, the lazy commands and no HTTP.
const binPlugins: NonNullable<Options["esbuildPlugins"]> = [{
  // The bin's way to the bundle with every shim (runtimes/bin.ts).
  name: "bin-to-cli-all",
  setup(build) {
    build.onResolve(
      { filter: /^\.\/cli\.ts$/ },
      (args) => args.importer.endsWith("bin.ts") ? { path: "./cli_all.js", external: true } : undefined,
    );
  },
}, {
  name: "lazy-commands",
  setup(build) {
    const filter = new RegExp(`^\\./(${[...lazyCommands, ...lazyRuntimeParts].join("|")})\\.ts$`);
    build.onResolve({ filter }, (args) => ({ path: args.path.replace(/\.ts$/, ".js"), external: true }));
  },
}, {
  // The bin serves no HTTP, but the runtime shims it bundles name their
  // HTTP adapters (and srvx behind them) in a dynamic import(), which a
  // bundle without code splitting would compile into cli.js: about 75 kB
  // more to read on every start. Left out, an import fails with this.
  name: "no-http-in-cli",
  setup(build) {
    build.onResolve({ filter: /^\.\/_http_(node|bun|fast_deno|fast_bun)\.ts$/ }, (args) => ({
      path: args.path,
      namespace: "no-http-in-cli",
    }));
    build.onLoad({ filter: /.*/, namespace: "no-http-in-cli" }, () => ({
      contents:
        'throw new Error("the socket-activate CLI bundle has no HTTP server: import serve() from the package");',
      loader: "js",
    }));
  },
}];

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
    // The bin, CommonJS: Node 20 starts a CommonJS main about 3 ms sooner
    // than an ES module one (its ESM loader is set up for the main module
    // alone), the same for a hand-written greeter (README "Benchmarks").
    entry: { cli: "runtimes/bin.ts" },
    format: ["cjs"],
    target: "es2022",
    platform: "node",
    outDir: "dist",
    splitting: false,
    esbuildPlugins: binPlugins,
  },
  {
    entry: {
      cli_all: "runtimes/cli.ts",
      ...Object.fromEntries(lazyCommands.map((c) => [c, `src/${c}.ts`])),
      ...Object.fromEntries(lazyRuntimeParts.map((c) => [c, `runtimes/${c}.ts`])),
    },
    format: ["esm"],
    target: "es2022",
    platform: "node",
    outDir: "dist",
    splitting: false,
    esbuildPlugins: binPlugins,
  },
]);

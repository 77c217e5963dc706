import path from "node:path";
import { defineConfig, type Options } from "tsup";

// The CLI's commands that are imported only when run: each is built into a
// file of its own, which the bin imports at run time, rather than compiled
// with the bin on every start (unit.ts alone added about 0.7 ms of compiling
// to the echo server's start-up in Node).
// Each is named by its source; the name is the built file's (dist/unit.js).
const lazyCommands = { unit: "src/cli/unit.ts", run: "src/cli/run.ts" };
// The same for the runtimes' halves of `run` (runtimes/*/launcher.ts), which
// the shims import on first use: about 19 KB the echo server need not parse.
const lazyRuntimeParts = { _run_node: "runtimes/node/launcher.ts", _run_ffi: "runtimes/ffi/launcher.ts" };
const lazy = new Map(
  Object.entries({ ...lazyCommands, ...lazyRuntimeParts }).map(([name, src]) => [path.resolve(src), name]),
);
// The HTTP adapters the shims import in a dynamic import() (see below).
const httpAdapters = new Set(
  [
    "runtimes/node_api/http.ts",
    "runtimes/bun/http.ts",
    "runtimes/deno/http_fast.ts",
    "runtimes/bun/http_fast.ts",
  ]
    .map((f) => path.resolve(f)),
);
// Plugins match a file by where an import resolves, not by how it is
// spelled: the same file is "./launcher.ts" from one folder and
// "../ffi/launcher.ts" from another.
// An entry point resolves too: it is never one of these imports.
const resolved = (args: { path: string; resolveDir: string; kind: string }) =>
  args.kind === "entry-point" ? "" : path.resolve(args.resolveDir, args.path);

// The bin's plugins: the bundle with every shim, the lazy commands and no HTTP.
const binPlugins: NonNullable<Options["esbuildPlugins"]> = [{
  // The bin's way to the bundle with every shim (runtimes/bin.ts).
  name: "bin-to-cli-all",
  setup(build) {
    const cli = path.resolve("runtimes/cli.ts");
    build.onResolve(
      { filter: /cli\.ts$/ },
      (args) => resolved(args) === cli ? { path: "./cli_all.js", external: true } : undefined,
    );
  },
}, {
  name: "lazy-commands",
  setup(build) {
    build.onResolve({ filter: /\.ts$/ }, (args) => {
      const name = lazy.get(resolved(args));
      return name === undefined ? undefined : { path: `./${name}.js`, external: true };
    });
  },
}, {
  // The bin serves no HTTP, but the runtime shims it bundles name their
  // HTTP adapters (and srvx behind them) in a dynamic import(), which a
  // bundle without code splitting would compile into cli.js: about 75 kB
  // more to read on every start. Left out, an import fails with this.
  name: "no-http-in-cli",
  setup(build) {
    build.onResolve(
      { filter: /http(_fast)?\.ts$/ },
      (args) =>
        httpAdapters.has(resolved(args)) ? { path: args.path, namespace: "no-http-in-cli" } : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: "no-http-in-cli" }, () => ({
      contents:
        'throw new Error("the socket-activate CLI bundle has no HTTP server: import serve() from the package");',
      loader: "js",
    }));
  },
}];

// The name runtimes/node/runtime.ts require()s Node 26's libc binding by (the
// _ffi_node entry, beside every built file), and the base it resolves from:
// CommonJS has no import.meta, and createRequire takes a path as well.
const ffiDefines: NonNullable<Options["esbuildOptions"]> = (options, { format }) => {
  options.define = {
    ...options.define,
    __FFI_LIBC__: JSON.stringify(`./_ffi_node.${format === "cjs" ? "cjs" : "js"}`),
  };
  if (format === "cjs") options.define["import.meta.url"] = "__filename";
};

// One bundle per runtime entry (picked by export conditions in package.json)
// plus the bin. ESM and CJS, with declarations for both.
export default defineConfig([
  {
    // _ffi_node: Node 26's libc over node:ffi, which runtimes/node/runtime.ts
    // require()s by this name on first need (see ffiDefines).
    entry: {
      node: "runtimes/node.ts",
      deno: "runtimes/deno.ts",
      bun: "runtimes/bun.ts",
      _ffi_node: "runtimes/node/ffi_libc.ts",
    },
    format: ["esm", "cjs"],
    esbuildOptions: ffiDefines,
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
    // alone), the same for a hand-written greeter (docs/benchmarks.md).
    entry: { cli: "runtimes/bin.ts" },
    format: ["cjs"],
    esbuildOptions: ffiDefines,
    target: "es2022",
    platform: "node",
    outDir: "dist",
    splitting: false,
    esbuildPlugins: binPlugins,
  },
  {
    entry: {
      cli_all: "runtimes/cli.ts",
      ...lazyCommands,
      ...lazyRuntimeParts,
    },
    format: ["esm"],
    target: "es2022",
    platform: "node",
    outDir: "dist",
    splitting: false,
    esbuildPlugins: binPlugins,
    esbuildOptions: ffiDefines,
  },
]);

// The package's footprint, as a user installs it: `node bench/footprint.mjs`
// (also the last part of `npm run bench`). Markdown tables on stdout,
// progress on stderr; about 30 s on 2 cores.
//
// 1. Installed size: `npm pack` of this checkout (dist/ must be built),
//    installed offline into a fresh temporary project; the bytes and the disk
//    blocks (du) of node_modules/socket-activate, by kind of file.
// 2. Each built entry (dist/<runtime>.js and .cjs, dist/cli.cjs): its own
//    bytes, and what importing it loads before any of its code runs: the
//    entry plus every chunk it imports statically, recursively (files,
//    bytes, bytes gzipped file by file at zlib's default level 6). Chunks
//    behind a dynamic import() load only on the path that needs them and are
//    listed apart.
// 3. Import time, from the installed package, in each runtime: a module that
//    imports `socket-activate` and does nothing else, against an empty
//    module, each a cold process timed from spawn to exit; also the CommonJS
//    require() (Node, Bun), the CLI bundle (`dist/cli.cjs --version`, which
//    loads the whole bin and prints one line) and the JSR entry from this
//    checkout (mod.ts, how Deno and Bun run the source). One unmeasured
//    warm-up per variant, then rounds that interleave every variant of every
//    runtime (A B C A B C ...); medians of FOOTPRINT_SAMPLES (default 21,
//    min 15) and the difference to the empty module of the same runtime.
//    In-process, the same import timed with performance.now() around a
//    dynamic import() (median too): the module loading alone, without the
//    process start-up noise; the same for the empty module is its floor.
// 4. A diagnostic beside 3: the same runtime entry bundled by esbuild (tsup's
//    own, from node_modules) into one file without code splitting, imported
//    in-process the same way. The published build splits the shared code into
//    chunks, and each extra module costs Node's ESM loader a fixed price.
//
// Knobs (environment): FOOTPRINT_SAMPLES=21, BENCH_RUNTIMES="node deno bun".
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const samplesEnv = process.env.FOOTPRINT_SAMPLES ?? "21";
const SAMPLES = Number(samplesEnv);
if (!Number.isInteger(SAMPLES) || SAMPLES < 15) {
  throw new Error(`FOOTPRINT_SAMPLES="${samplesEnv}": give an integer of at least 15`);
}
const RUNTIMES = (process.env.BENCH_RUNTIMES ?? "node deno bun").split(/\s+/).filter(Boolean);
const BIN = {
  node: process.execPath,
  deno: path.join(ROOT, "node_modules/.bin/deno"),
  bun: path.join(ROOT, "node_modules/.bin/bun"),
};
for (const rt of RUNTIMES) {
  if (!BIN[rt] || !fs.existsSync(BIN[rt])) throw new Error(`unknown or missing runtime "${rt}"`);
}
if (!fs.existsSync(path.join(ROOT, "dist", "cli.cjs"))) {
  throw new Error("dist/ is missing: build it with `npm run build`");
}
const log = (s) => process.stderr.write(s);

// ------------------------------------------------------------------ install

const project = fs.mkdtempSync(path.join(os.tmpdir(), "sa-footprint-"));
process.on("exit", () => fs.rmSync(project, { recursive: true, force: true }));
const [packed] = JSON.parse(
  execFileSync("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", project], {
    cwd: ROOT,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"],
  }),
);
fs.writeFileSync(
  path.join(project, "package.json"),
  JSON.stringify({ name: "app", private: true, type: "module" }),
);
execFileSync("npm", ["install", "--offline", "--no-audit", "--no-fund", `./${packed.filename}`], {
  cwd: project,
  stdio: "ignore",
});
const PKG = path.join(project, "node_modules", "socket-activate");
const DIST = path.join(PKG, "dist");

function walk(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]
  );
}
const kindOf = (f) =>
  /\.d\.c?ts$/.test(f)
    ? "type declarations (.d.ts, .d.cts)"
    : /\.js$/.test(f)
    ? "ESM (.js)"
    : /\.cjs$/.test(f)
    ? "CommonJS (.cjs)"
    : "README, LICENSE, package.json";
const installed = {};
for (const f of walk(PKG)) {
  const k = kindOf(f);
  installed[k] ??= { files: 0, bytes: 0 };
  installed[k].files++;
  installed[k].bytes += fs.statSync(f).size;
}
const du = Number(execFileSync("du", ["-sk", PKG], { encoding: "utf8" }).split(/\s/)[0]);

// ------------------------------------------------------------ entry closures

const gz = (f) => gzipSync(fs.readFileSync(f)).length;
/** The chunks a built file imports: static (import ... from / require) and dynamic (import()). */
function imports(file) {
  const src = fs.readFileSync(file, "utf8");
  const rel = (m) => path.join(path.dirname(file), m);
  // tsup's CommonJS: `var x = require('./chunk.cjs');` at the top level is
  // static, a require() inside `Promise.resolve().then(...)` is an import().
  const stat = [
    ...src.matchAll(/^(?:import|export)\s[^;]*?from\s*"(\.\/[^"]+)"/gms),
    ...src.matchAll(/^import\s*"(\.\/[^"]+)"/gm),
    ...src.matchAll(/^var \w+ = require\(['"](\.\/[^'"]+)['"]\)/gm),
  ].map((m) => rel(m[1]));
  const dyn = [
    ...src.matchAll(/\bimport\("(\.\/[^"]+)"\)/g),
    ...src.matchAll(/_interopRequireWildcard\(require\(['"](\.\/[^'"]+)['"]\)/g),
  ].map((m) => rel(m[1]));
  return { stat, dyn };
}
function closure(entry) {
  const eager = new Set([entry]);
  const lazy = new Set();
  const todo = [entry];
  while (todo.length) {
    const { stat, dyn } = imports(todo.pop());
    for (const f of stat) if (!eager.has(f)) eager.add(f), todo.push(f);
    for (const f of dyn) lazy.add(f);
  }
  // A lazy chunk pulls in its own static imports when it loads.
  for (const f of [...lazy]) {
    const seen = [f];
    while (seen.length) {
      for (const g of imports(seen.pop()).stat) if (!eager.has(g) && !lazy.has(g)) lazy.add(g), seen.push(g);
    }
  }
  for (const f of eager) lazy.delete(f);
  const sum = (fs_, fn) => [...fs_].reduce((n, f) => n + fn(f), 0);
  return {
    files: eager.size,
    loadBytes: sum(eager, (f) => fs.statSync(f).size),
    loadGzip: sum(eager, gz),
    lazy: [...lazy].map((f) => path.basename(f)).sort(),
    lazyBytes: sum(lazy, (f) => fs.statSync(f).size),
  };
}
const ENTRIES = ["node.js", "node.cjs", "deno.js", "deno.cjs", "bun.js", "bun.cjs", "cli.cjs"];
const entries = ENTRIES.map((e) => {
  const f = path.join(DIST, e);
  return { entry: e, bytes: fs.statSync(f).size, gzip: gz(f), ...closure(f) };
});

// ------------------------------------------------------------- import times

fs.writeFileSync(path.join(project, "empty.mjs"), "");
fs.writeFileSync(path.join(project, "empty.cjs"), "");
fs.writeFileSync(path.join(project, "import.mjs"), 'import "socket-activate";\n');
fs.writeFileSync(path.join(project, "require.cjs"), 'require("socket-activate");\n');
fs.writeFileSync(path.join(project, "mod.mjs"), `import ${JSON.stringify(path.join(ROOT, "mod.ts"))};\n`);
const inProcess = (spec) =>
  `const t = performance.now();\nawait import(${JSON.stringify(spec)});\n` +
  "console.log(performance.now() - t);\n";
fs.writeFileSync(path.join(project, "timed.mjs"), inProcess("socket-activate"));
fs.writeFileSync(path.join(project, "timed-empty.mjs"), inProcess("./empty.mjs"));
fs.writeFileSync(path.join(project, "timed-mod.mjs"), inProcess(path.join(ROOT, "mod.ts")));

// 4.: one file per runtime entry, the same code as dist/<runtime>.js.
const esbuild = await import("esbuild");
for (const rt of RUNTIMES) {
  await esbuild.build({
    entryPoints: [path.join(ROOT, "runtimes", `${rt}.ts`)],
    bundle: true,
    format: "esm",
    platform: "node",
    target: "es2022",
    outfile: path.join(project, `single-${rt}.mjs`),
    logLevel: "error",
  });
  fs.writeFileSync(path.join(project, `timed-single-${rt}.mjs`), inProcess(`./single-${rt}.mjs`));
}
const single = (
  rt,
  run,
) => ["diagnostic: one-file bundle, in-process", [...run, `timed-single-${rt}.mjs`], true];

const cli = path.join(DIST, "cli.cjs");
// What a user grants: the README's flags for Deno.
const denoRun = [BIN.deno, "run", "--allow-env", "--allow-net", "--allow-ffi"];
/** Variants per runtime: [label, argv, in-process?]. Node cannot import mod.ts (TypeScript). */
const VARIANTS = {
  node: [
    ["empty module", [BIN.node, "empty.mjs"]],
    ['`import "socket-activate"`', [BIN.node, "import.mjs"]],
    ["in-process `await import()` of the empty module", [BIN.node, "timed-empty.mjs"], true],
    ["in-process `await import()`", [BIN.node, "timed.mjs"], true],
    ["empty CommonJS module", [BIN.node, "empty.cjs"]],
    ['`require("socket-activate")`', [BIN.node, "require.cjs"]],
    ["CLI bundle, `cli.cjs --version`", [BIN.node, cli, "--version"]],
    single("node", [BIN.node]),
  ],
  deno: [
    ["empty module", [...denoRun, "empty.mjs"]],
    ['`import "socket-activate"`', [...denoRun, "import.mjs"]],
    ["in-process `await import()` of the empty module", [...denoRun, "timed-empty.mjs"], true],
    ["in-process `await import()`", [...denoRun, "timed.mjs"], true],
    ["JSR entry, `import mod.ts`", [...denoRun, "mod.mjs"]],
    ["in-process `await import(mod.ts)`", [...denoRun, "timed-mod.mjs"], true],
    ["empty CommonJS module", [...denoRun, "empty.cjs"]],
    ["CLI bundle, `cli.cjs --version`", [...denoRun, cli, "--version"]],
    single("deno", denoRun),
  ],
  bun: [
    ["empty module", [BIN.bun, "empty.mjs"]],
    ['`import "socket-activate"`', [BIN.bun, "import.mjs"]],
    ["in-process `await import()` of the empty module", [BIN.bun, "timed-empty.mjs"], true],
    ["in-process `await import()`", [BIN.bun, "timed.mjs"], true],
    ["empty CommonJS module", [BIN.bun, "empty.cjs"]],
    ['`require("socket-activate")`', [BIN.bun, "require.cjs"]],
    ["JSR entry, `import mod.ts`", [BIN.bun, "mod.mjs"]],
    ["in-process `await import(mod.ts)`", [BIN.bun, "timed-mod.mjs"], true],
    ["CLI bundle, `cli.cjs --version`", [BIN.bun, cli, "--version"]],
    single("bun", [BIN.bun]),
  ],
};
const env = { PATH: process.env.PATH, HOME: process.env.HOME, DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" };

/** One cold process: wall time from spawn to exit in ms, or the time it printed (in-process). */
function sample(argv, printed) {
  const t0 = performance.now();
  const r = spawnSync(argv[0], argv.slice(1), { cwd: project, env, encoding: "utf8", timeout: 15000 });
  const wall = performance.now() - t0;
  if (r.status !== 0) {
    throw new Error(`${argv.join(" ")} exited ${r.status ?? r.signal}: ${r.error?.message ?? ""}${r.stderr}`);
  }
  return printed ? Number(r.stdout.trim()) : wall;
}

const times = {};
log(`footprint: warm-up`);
for (const rt of RUNTIMES) {
  for (const [label, argv, printed] of VARIANTS[rt]) {
    sample(argv, printed);
    times[`${rt} ${label}`] = [];
    log(".");
  }
}
log(`\nfootprint: ${SAMPLES} rounds of ${Object.keys(times).length} cold processes `);
const tStart = performance.now();
for (let i = 0; i < SAMPLES; i++) {
  for (const rt of RUNTIMES) {
    for (const [label, argv, printed] of VARIANTS[rt]) times[`${rt} ${label}`].push(sample(argv, printed));
  }
  log(".");
}
log(` ${((performance.now() - tStart) / 1000).toFixed(0)} s\n`);

// ------------------------------------------------------------------- tables

function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  const i = (s.length - 1) * q, lo = Math.floor(i), hi = Math.ceil(i);
  return s[lo] + (s[hi] - s[lo]) * (i - lo);
}
const median = (xs) => quantile(xs, 0.5);
const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;
const ms = (x) => `${x.toFixed(2)} ms`;
const sign = (x) => `${x >= 0 ? "+" : "−"}${Math.abs(x).toFixed(2)} ms`;
const table = (head, rows) =>
  [
    `| ${head.join(" | ")} |`,
    `|${head.map(() => "---").join("|")}|`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ]
    .join("\n");
const version = (rt) =>
  rt === "node"
    ? `node ${process.version.slice(1)}`
    : `${rt} ${
      execFileSync(BIN[rt], ["--version"], { encoding: "utf8" }).replace(/^deno /, "").split(/[\s(]/)[0]
    }`;

const out = [];
out.push("# socket-activate footprint", "");
out.push(`${new Date().toISOString()} · ${RUNTIMES.map(version).join(" · ")} · ${os.cpus().length} CPUs`, "");
out.push(
  `## Installed size (\`npm pack\` → \`npm install\` of the tarball)`,
  "",
  `Tarball ${kb(packed.size)} (${packed.entryCount} files); installed ${kb(packed.unpackedSize)}, ` +
    `${du} KiB of disk blocks (\`du -sk node_modules/socket-activate\`). No dependencies.`,
  "",
);
out.push(table(
  ["files", "count", "bytes"],
  Object.entries(installed).sort(([, a], [, b]) => b.bytes - a.bytes).map((
    [k, v],
  ) => [k, v.files, kb(v.bytes)]),
));
out.push("", "## Built entries: what an import loads before the package's code runs", "");
out.push(table(
  [
    "entry",
    "own",
    "own gzip",
    "loaded at import: files",
    "bytes",
    "gzip",
    "loaded later, on the path that needs it",
  ],
  entries.map((e) => [
    `dist/${e.entry}`,
    kb(e.bytes),
    kb(e.gzip),
    e.files,
    kb(e.loadBytes),
    kb(e.loadGzip),
    e.lazy.length ? `${e.lazy.length} chunk(s), ${kb(e.lazyBytes)}` : "-",
  ]),
));
out.push(
  "",
  `## Import time, from the installed package (median of ${SAMPLES} cold processes, interleaved)`,
  "",
);
const rows = [];
for (const rt of RUNTIMES) {
  for (const [label, , printed] of VARIANTS[rt]) {
    const m = median(times[`${rt} ${label}`]);
    // CommonJS against CommonJS: the bin is a .cjs file, and a runtime's
    // CommonJS loader is a cost of its own (Deno's about 15 ms).
    const cjs = label.startsWith("`require") || label.startsWith("CLI bundle");
    const against = times[`${rt} ${cjs ? "empty CommonJS module" : "empty module"}`];
    const isBase = label.startsWith("empty");
    // Paired by round: the two processes ran one right after the other, so
    // the machine's drift cancels out of each difference.
    const diff = median(times[`${rt} ${label}`].map((x, i) => x - against[i]));
    const xs = times[`${rt} ${label}`];
    rows.push([
      rt,
      label,
      printed ? "-" : ms(m),
      printed ? ms(m) : isBase ? "-" : sign(diff),
      `${quantile(xs, 0.25).toFixed(2)}–${quantile(xs, 0.75).toFixed(2)}`,
    ]);
  }
}
out.push(table(["runtime", "process", "spawn → exit", "cost of the import", "p25–p75 (ms)"], rows));
out.push(
  "",
  "The cost of an import: the median, over the rounds, of its process's time minus the empty module's in the",
  "same round (require and the CLI bundle, a .cjs file, against an empty CommonJS module); for the in-process rows, the time",
  "`await import()` itself took. p25–p75 is the spread of the process times (or of the in-process times).",
);
console.log(out.join("\n"));

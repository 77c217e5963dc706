// The npm tarball as a user gets it: packed once, installed offline into a
// fresh project (the package has no dependencies), then imported, required,
// type-checked and run from there in the runtime running this file.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  activate,
  connect,
  exchange,
  expectedEcho,
  freePort,
  refused,
  ROOT,
  RUNTIME,
  tempDir,
} from "./_util.ts";

let project = "";
let pkg = "";

before(() => {
  project = tempDir();
  execFileSync("npm", ["pack", "--ignore-scripts", "--pack-destination", project], {
    cwd: ROOT,
    stdio: "ignore",
  });
  const tarball = fs.readdirSync(project).find((f) => f.endsWith(".tgz"))!;
  fs.writeFileSync(
    path.join(project, "package.json"),
    JSON.stringify({ name: "app", private: true, type: "module" }),
  );
  // npm warns here that `prepare` is not covered by allowScripts: npm 11
  // lists it for a tarball on disk but never runs it, and a registry install
  // does not list it (@npmcli/arborist install-scripts.js).
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--offline", `./${tarball}`], {
    cwd: project,
    stdio: "ignore",
  });
  pkg = path.join(project, "node_modules", "socket-activate");
});

after(() => fs.rmSync(project, { recursive: true, force: true }));

function runIn(cmd: string[]): { status: number | null; out: string } {
  try {
    return {
      status: 0,
      out: execFileSync(cmd[0], cmd.slice(1), {
        cwd: project,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
      }),
    };
  } catch (e) {
    const { status, stdout, stderr } = e as { status: number; stdout?: string; stderr?: string };
    return { status, out: `${stdout}${stderr}` };
  }
}

const g = globalThis as { Deno?: { execPath(): string } };
const deno = () => g.Deno!.execPath();

/** The command that runs `file` (in the project) in this runtime, with the permissions a user would grant. */
function runCommand(file: string): string[] {
  if (RUNTIME === "deno") return [deno(), "run", "--allow-env", "--allow-net", "--allow-ffi", file];
  if (RUNTIME === "bun") return [process.execPath, "run", file];
  // tsx from this checkout: the project has no dev dependencies.
  const tsx = path.join(ROOT, "node_modules", "tsx", "dist", "loader.mjs");
  return file.endsWith(".ts") ? [process.execPath, "--import", tsx, file] : [process.execPath, file];
}

// What `socket-activate` resolves to in each runtime: its own build, chosen
// by the export conditions (deno, bun, import, require).
const own = { node: "node", deno: "deno", bun: "bun" }[RUNTIME];

test("the installed package imports with its runtime's build", () => {
  // Deno takes the npm: specifier from the project's node_modules, offline.
  const spec = RUNTIME === "deno" ? "npm:socket-activate" : "socket-activate";
  fs.writeFileSync(
    path.join(project, "probe.mjs"),
    `import * as m from "${spec}";\n` +
      `console.log(import.meta.resolve("${spec}"));\n` +
      "console.log([m.listen, m.listenFds, m.notify, m.listenServer, m.listenBun].map((f) => typeof f).join(' '));\n",
  );
  const r = runIn(runCommand("probe.mjs"));
  assert.equal(r.status, 0, r.out);
  const [resolved, types] = r.out.trim().split("\n");
  assert.equal(resolved, `file://${pkg}/dist/${own}.js`);
  // listenBun comes only with the Bun build.
  assert.equal(types, `function function function function ${RUNTIME === "bun" ? "function" : "undefined"}`);
});

test(
  "Deno resolves the bare name through the project's package.json too",
  { skip: RUNTIME !== "deno" && "Deno only" },
  () => {
    fs.writeFileSync(
      path.join(project, "bare.mjs"),
      'import { listen } from "socket-activate";\nconsole.log(import.meta.resolve("socket-activate"), typeof listen);\n',
    );
    const r = runIn([deno(), "run", "bare.mjs"]);
    assert.equal(r.status, 0, r.out);
    assert.equal(r.out.trim(), `file://${pkg}/dist/deno.js function`);
  },
);

test("the installed package is required from CommonJS (Node, Bun)", { skip: RUNTIME === "deno" }, () => {
  fs.writeFileSync(
    path.join(project, "probe.cjs"),
    'const m = require("socket-activate");\n' +
      'console.log(require.resolve("socket-activate"));\n' +
      "console.log(typeof m.listen, typeof m.listenBun);\n",
  );
  const r = runIn([process.execPath, "probe.cjs"]);
  assert.equal(r.status, 0, r.out);
  assert.equal(
    r.out.trim(),
    `${pkg}/dist/${own}.cjs\nfunction ${RUNTIME === "bun" ? "function" : "undefined"}`,
  );
});

test("npx socket-activate --help works from the installed package", () => {
  const r = runIn(["npx", "--offline", "socket-activate", "--help"]);
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /^socket-activate \d+\.\d+\.\d+: systemd socket activation/);
});

test("the installed bin runs in this runtime's own way (deno run npm:, bunx --bun)", {
  skip: RUNTIME === "node" && "Deno and Bun only: under Node the bin is the npx test above",
}, () => {
  const cmd = RUNTIME === "deno"
    ? [deno(), "run", "-A", "npm:socket-activate", "--version"]
    : [process.execPath, "x", "--bun", "socket-activate", "--version"];
  const r = runIn(cmd);
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, new RegExp(`^socket-activate \\d+\\.\\d+\\.\\d+ \\(${RUNTIME} `));
});

test("the installed echo server runs under systemd-socket-activate", async () => {
  const bin = path.join(pkg, "dist", "cli.cjs");
  // Deno as a Deno user of the npm package starts it; Node and Bun run the bin
  // file directly, as a unit's ExecStart= must (npx and bunx are wrappers).
  const cmd = RUNTIME === "deno"
    ? ["env", "-C", project, deno(), "run", "-A", "npm:socket-activate"] // env -C: see below
    : [process.execPath, bin];
  const port = await freePort();
  const { run, conn } = await activate(["-l", `127.0.0.1:${port}`], [...cmd, "--quiet"], { port });
  const data = new TextEncoder().encode("installed");
  assert.deepEqual(await exchange(conn, data), expectedEcho(data, true));
  run.signal("SIGTERM");
  assert.equal(await run.exited(), 0, run.stderr());
});

test("examples/echo.ts importing the installed package serves under systemd-socket-activate", async () => {
  const example = fs.readFileSync(path.join(ROOT, "examples", "echo.ts"), "utf8");
  const spec = RUNTIME === "deno" ? "npm:socket-activate" : "socket-activate";
  const app = example.replace(/from "\.\.\/mod\.ts";/, `from "${spec}";`);
  assert.notEqual(app, example, "examples/echo.ts no longer imports ../mod.ts");
  fs.writeFileSync(path.join(project, "echo.ts"), app);
  const port = await freePort();
  // env -C: the project's directory, where Deno finds its package.json and
  // node_modules; env execs, so the PID (LISTEN_PID) stays the runtime's.
  const cmd = ["env", "-C", project, ...runCommand("echo.ts")];
  const { run, conn } = await activate(["-l", `127.0.0.1:${port}`], cmd, { port });
  const data = new TextEncoder().encode("user code");
  assert.deepEqual(await exchange(conn, data), expectedEcho(data, true));
  const again = new TextEncoder().encode("twice");
  assert.deepEqual(await exchange(await connect({ port }), again), expectedEcho(again, true));
  run.signal("SIGTERM");
  assert.equal(await run.exited(), 0, run.stderr());
  const extra = run.stderr().split("\n").filter((l) =>
    l && !/^(Listening on|Communication attempt|Execing) /.test(l)
  );
  assert.deepEqual(extra, [], "a warning from the installed package");
});

// Each entry either works in the runtime it finds itself in or refuses at
// once, naming the entry to use: never a server on a socket of its own.
for (const entry of ["", "/node", "/deno", "/bun"]) {
  const works = entry === "" || entry === `/${RUNTIME}`;
  test(`socket-activate${entry} in ${RUNTIME} ${works ? "serves the activated socket" : "refuses with ENOTSUP naming the entry to use"}`, async () => {
    const [port, fallback] = [await freePort(), await freePort()];
    const spec = `${RUNTIME === "deno" ? "npm:" : ""}socket-activate${entry}`;
    const file = `entry${entry.replace("/", "_") || "_main"}.mjs`;
    fs.writeFileSync(
      path.join(project, file),
      `import * as net from "node:net";
import { listenServer } from "${spec}";
try {
  const r = await listenServer(net.createServer((s) => s.end("entry\\n")), { fallback: { port: ${fallback}, hostname: "127.0.0.1" } });
  process.stderr.write("ready " + JSON.stringify(r) + "\\n");
} catch (e) {
  process.stderr.write(e.code + ": " + e.message + "\\n");
  process.exit(1);
}
`,
    );
    const { run, conn } = await activate(["-l", `127.0.0.1:${port}`], [
      "env",
      "-C",
      project,
      ...runCommand(file),
    ], {
      port,
    });
    if (works) {
      // Not a bare half-close: Deno's node:net loses a write made in the tick
      // that accepts a connection whose FIN is already queued (test/native.test.ts).
      assert.equal(new TextDecoder().decode(await exchange(conn, new TextEncoder().encode("x"))), "entry\n");
      await run.stderrMatch(new RegExp(`ready \\{"activated":true,"fd":3,.*"port":${port}\\}`));
      run.child.kill("SIGKILL");
      await run.exited();
      return;
    }
    conn.on("error", () => {}); // the refused program's socket goes with it
    assert.equal(await run.exited(), 1, run.stderr());
    const name = { node: "Node", deno: "Deno", bun: "Bun" };
    assert.match(
      run.stderr(),
      new RegExp(
        `ENOTSUP: socket-activate's ${entry} entry is the build for ${
          name[entry.slice(1) as "node"]
        }, but this ` +
          `is ${name[RUNTIME]}: .*"socket-activate" on npm.* or its /${RUNTIME} entry instead`,
      ),
    );
    assert.equal(await refused(fallback), true, "the wrong entry bound its fallback");
  });
}

// Types do not depend on the runtime running the test: checked once, under Node.
test("TypeScript consumers get the types: node16 (ESM and CJS), bundler, bundler with the bun condition", {
  skip: RUNTIME !== "node",
}, () => {
  const ts = path.join(project, "ts");
  fs.mkdirSync(ts, { recursive: true });
  const write = (f: string, s: string) => fs.writeFileSync(path.join(ts, f), s);
  // A wrong argument that must not type-check: proof that the types are the
  // package's, not `any` from an unresolved import.
  write(
    "esm.mts",
    `import { type Conn, listen, listenFds, listenServer } from "socket-activate";
import { createServer } from "node:net";
export const fds: { fd: number; name: string }[] = listenFds();
const server = await listen({ fallback: { port: 8080 } }, async (conn: Conn) => {
  await conn.write(new Uint8Array(1));
});
export const activated: boolean = server.activated;
await listenServer(createServer(), { fallback: { port: 8081 } });
// @ts-expect-error a port is a number
await listen({ fallback: { port: "8080" } }, () => {});
`,
  );
  write(
    "cjs.cts",
    `import sa = require("socket-activate");
export const fds: { fd: number; name: string }[] = sa.listenFds();
// @ts-expect-error listenFds takes options, not a number
sa.listenFds(42);
`,
  );
  write(
    "bundler.ts",
    `import * as sa from "socket-activate";
export const listen: typeof sa.listen = sa.listen;
// @ts-expect-error listenBun is in the Bun build only
sa.listenBun;
`,
  );
  write(
    "bun.ts",
    `import { listenBun } from "socket-activate";
export const f: typeof listenBun = listenBun;
`,
  );
  const base = {
    strict: true,
    noEmit: true,
    // Checking every .d.ts (with @types/node) costs about 1.3 s a run: done
    // once, for the node16 consumer, whose ESM and CJS imports read the
    // package's .d.ts and .d.cts.
    skipLibCheck: true,
    target: "es2022",
    types: ["node"],
    typeRoots: [path.join(ROOT, "node_modules", "@types")],
  };
  const configs = {
    node16: {
      compilerOptions: { ...base, module: "node16", moduleResolution: "node16", skipLibCheck: false },
      files: ["esm.mts", "cjs.cts"],
    },
    bundler: {
      compilerOptions: { ...base, module: "esnext", moduleResolution: "bundler" },
      files: ["bundler.ts"],
    },
    bun: {
      compilerOptions: { ...base, module: "esnext", moduleResolution: "bundler", customConditions: ["bun"] },
      files: ["bun.ts"],
    },
  };
  const tsc = path.join(ROOT, "node_modules", "typescript", "bin", "tsc");
  for (const [name, config] of Object.entries(configs)) {
    write(`tsconfig.${name}.json`, JSON.stringify(config));
    const r = runIn([process.execPath, tsc, "-p", path.join(ts, `tsconfig.${name}.json`)]);
    assert.equal(r.status, 0, `tsc (${name}):\n${r.out}`);
  }
});

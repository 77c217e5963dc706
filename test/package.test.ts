// The npm tarball as a user gets it: packed, installed into a fresh project,
// imported and run from there in the runtime running this file.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { activate, exchange, expectedEcho, freePort, ROOT, RUNTIME, tempDir } from "./_util.ts";

let project = "";

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
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--offline", `./${tarball}`], {
    cwd: project,
    stdio: "ignore",
  });
});

after(() => fs.rmSync(project, { recursive: true, force: true }));

function runIn(cmd: string[]): { status: number | null; out: string } {
  try {
    return { status: 0, out: execFileSync(cmd[0], cmd.slice(1), { cwd: project, encoding: "utf8" }) };
  } catch (e) {
    return { status: (e as { status: number }).status, out: String((e as { stdout?: string }).stdout) };
  }
}

const g = globalThis as { Deno?: { execPath(): string } };

test("the installed package imports with its runtime's shim", () => {
  const probe = 'import * as m from "socket-activate"; ' +
    'console.log([typeof m.listen, typeof m.listenFds, typeof m.notify, typeof m.listenServer, typeof m.listenBun].join(" "));';
  fs.writeFileSync(path.join(project, "probe.mjs"), probe);
  const cmd = RUNTIME === "deno"
    ? [g.Deno!.execPath(), "run", "-A", "--node-modules-dir=manual", "probe.mjs"]
    : [process.execPath, "probe.mjs"];
  const r = runIn(cmd);
  assert.equal(r.status, 0, r.out);
  // listenBun comes only with the Bun build: proof that the condition picked it.
  assert.equal(
    r.out.trim(),
    `function function function function ${RUNTIME === "bun" ? "function" : "undefined"}`,
  );
});

test("the installed package is required from CommonJS (Node, Bun)", { skip: RUNTIME === "deno" }, () => {
  fs.writeFileSync(
    path.join(project, "probe.cjs"),
    'const m = require("socket-activate"); console.log(typeof m.listen);',
  );
  const r = runIn([process.execPath, "probe.cjs"]);
  assert.equal(r.status, 0, r.out);
  assert.equal(r.out.trim(), "function");
});

test("npx socket-activate --help works from the installed package", () => {
  const r = runIn(["npx", "--offline", "socket-activate", "--help"]);
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /^socket-activate \d+\.\d+\.\d+: systemd socket activation/);
});

test("the installed echo server runs under systemd-socket-activate", async () => {
  const bin = path.join(project, "node_modules", "socket-activate", "dist", "cli.js");
  const cmd = RUNTIME === "deno" ? [g.Deno!.execPath(), "run", "-A", bin] : [process.execPath, bin];
  const port = await freePort();
  const { run, conn } = await activate(["-l", `127.0.0.1:${port}`], [...cmd, "--quiet"], { port });
  const data = new TextEncoder().encode("installed");
  assert.deepEqual(await exchange(conn, data), expectedEcho(data, true));
  run.signal("SIGTERM");
  assert.equal(await run.exited(), 0, run.stderr());
});

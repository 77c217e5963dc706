// Latency during reloads: `socket-activate run --now --restart` in each
// runtime's launcher, with the same runtime's echo server as COMMAND, RELOADS
// SIGHUPs (default 20, one every 1.5 s) under a steady client load (4 loops,
// each: connect, read the greeting, close). For each connection: connect() to
// the greeting's first byte; failed = refused, reset, or no greeting within
// 10 s. The two reload modes side by side, interleaved per runtime:
// --reload=stop-first (SIGTERM, exit, start) and --reload=overlap (the new
// COMMAND first; the old one gets SIGTERM once the new one is ready), and
// --workers 3 (a rolling reload: the three workers replaced one at a time, the
// same way; the next SIGHUP 1.5 s after the last old worker got its SIGTERM).
//
//   node bench/reload.mjs [RELOADS=20]   -> a markdown table on stdout
import { spawn } from "node:child_process";
import net from "node:net";
import { resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "..");
const RELOADS = Number(process.argv[2] ?? 20);
const BIN = {
  node: [resolve(ROOT, "node_modules/node26/bin/node"), resolve(ROOT, "dist/cli.cjs")],
  deno: [resolve(ROOT, "node_modules/.bin/deno"), "run", "-A", resolve(ROOT, "mod.ts")],
  bun: [resolve(ROOT, "node_modules/.bin/bun"), "run", resolve(ROOT, "mod.ts")],
};

function freePort() {
  return new Promise((res) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/** One connection: ms from connect() to the greeting's first byte, or an error code. */
function greet(port) {
  return new Promise((res) => {
    const t0 = performance.now();
    const s = net.connect(port, "127.0.0.1");
    const timer = setTimeout(() => (s.destroy(), res("timeout")), 10_000);
    s.once("data", () => {
      clearTimeout(timer);
      res(performance.now() - t0);
      s.destroy();
    });
    s.once("error", (e) => (clearTimeout(timer), res(e.code ?? e.message)));
  });
}

async function measure(rt, mode) {
  const port = await freePort();
  const cmd = BIN[rt];
  const p = spawn(cmd[0], [
    ...cmd.slice(1),
    "run",
    "--now",
    "--restart",
    ...(mode === "workers 3" ? ["--workers", "3"] : [`--reload=${mode}`]),
    "-l",
    `127.0.0.1:${port}`,
    "--",
    ...cmd,
    "echo",
    "--quiet",
  ], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  p.stderr.on("data", (d) => (err += d));
  while (!/listening on 127/.test(err)) await new Promise((r) => setTimeout(r, 20));
  const times = [], failures = [];
  let going = true;
  const loops = Array.from({ length: 4 }, async () => {
    while (going) {
      const r = await greet(port);
      if (typeof r === "number") times.push(r);
      else failures.push(r);
    }
  });
  const stopped = () => (err.match(/: SIGTERM to PID/g) ?? []).length;
  for (let i = 0; i < RELOADS; i++) {
    await new Promise((r) => setTimeout(r, 1500));
    const before = stopped();
    p.kill("SIGHUP");
    if (mode === "workers 3") { while (stopped() < before + 3) await new Promise((r) => setTimeout(r, 20)); }
  }
  await new Promise((r) => setTimeout(r, 1500));
  going = false;
  await Promise.all(loops);
  p.kill("SIGTERM");
  await new Promise((r) => p.once("exit", r));
  times.sort((a, b) => a - b);
  const q = (f) => times[Math.min(times.length - 1, Math.floor(f * times.length))];
  return { n: times.length, p50: q(0.5), p99: q(0.99), max: times.at(-1), failed: failures.length };
}

const rows = [];
for (const rt of ["node", "deno", "bun"]) {
  const got = {};
  for (const mode of ["stop-first", "overlap", "workers 3"]) {
    console.error(`reload bench: ${rt} ${mode} (${RELOADS} reloads)`);
    got[mode] = await measure(rt, mode);
  }
  rows.push([rt, got]);
}
const f = (x) => x.toFixed(1);
console.log(`| ${RELOADS} reloads under load | mode | connections | p50 ms | p99 ms | max ms | failed |`);
console.log("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
for (const [rt, got] of rows) {
  for (const [mode, r] of Object.entries(got)) {
    console.log(`| ${rt} | ${mode} | ${r.n} | ${f(r.p50)} | ${f(r.p99)} | ${f(r.max)} | ${r.failed} |`);
  }
}

// Latency during `systemctl reload` under a real systemd (test/real-systemd,
// root and the hybrid cgroup layout): each runtime's echo server in the unit
// `socket-activate unit --reload` writes, RELOADS reloads (default 5) under a
// steady client load (4 loops, each: connect, read the greeting, close), each
// with one connection held open on the old process and closed 1 s after the
// command, so that the old process drains for a second. For each connection:
// connect() to the greeting's first byte; failed = refused, reset, or no
// greeting within 10 s. Against it, the same with `systemctl restart` (stop,
// then start: new connections wait in the backlog while the old one drains),
// interleaved per runtime.
//
//   node bench/sd_reload.mjs [RELOADS=5]   -> a markdown table on stdout
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "..");
const RELOADS = Number(process.argv[2] ?? 5);
const NODE = resolve(ROOT, "node_modules/node26/bin/node");
const CMD = {
  node: [NODE, resolve(ROOT, "dist/cli.cjs")],
  deno: [resolve(ROOT, "node_modules/.bin/deno"), "run", resolve(ROOT, "mod.ts")],
  bun: [resolve(ROOT, "node_modules/.bin/bun"), "run", resolve(ROOT, "mod.ts")],
};
const pause = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((res) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/** One connection: ms from connect() to the greeting's first byte, or an error code. */
function greet(port, hold = false) {
  return new Promise((res) => {
    const t0 = performance.now();
    const s = net.connect(port, "127.0.0.1");
    const timer = setTimeout(() => (s.destroy(), res("timeout")), 10_000);
    s.once("data", () => {
      clearTimeout(timer);
      if (hold) return res(s);
      res(performance.now() - t0);
      s.destroy();
    });
    s.once("error", (e) => (clearTimeout(timer), res(e.code ?? e.message)));
  });
}

const dir = fs.mkdtempSync(join(os.tmpdir(), "sa-bench-"));
const units = join(dir, "units");
fs.mkdirSync(units);
const ports = {};
for (const rt of Object.keys(CMD)) {
  ports[rt] = await freePort();
  const out = execFileSync(NODE, [
    resolve(ROOT, "dist/cli.cjs"),
    "unit",
    `echo-${rt}`,
    "-l",
    `127.0.0.1:${ports[rt]}`,
    "--reload",
    "--",
    ...CMD[rt],
    "echo",
    "--quiet",
  ], { cwd: ROOT, stdio: ["ignore", "pipe", "ignore"] }).toString();
  const [socket, service] = out.split(/^# echo-\w+\.service\n/m);
  fs.writeFileSync(join(units, `echo-${rt}.socket`), socket.replace(/^# .*\n/, ""));
  fs.writeFileSync(
    join(units, `echo-${rt}.service`),
    `${service}StartLimitIntervalSec=0\nEnvironment=PATH=${process.env.PATH} HOME=${process.env.HOME}\n` +
      `StandardError=append:${dir}/${rt}.log\n`,
  );
}
fs.writeFileSync(
  join(units, "bench.target"),
  `[Unit]\nWants=${Object.keys(CMD).map((r) => `echo-${r}.socket`).join(" ")}\n`,
);
const boot = spawn("bash", [
  join(ROOT, "test/real-systemd/run-units.sh"),
  units,
  "bench.target",
  "--",
  "bash",
  "-c",
  `printf %s "$SYSTEMCTL" > ${dir}/systemctl; while [ ! -e ${dir}/done ]; do sleep 0.05; done`,
], { stdio: "ignore" });
for (let i = 0; !fs.existsSync(`${dir}/systemctl`); i++) {
  if (i > 600) throw new Error("systemd did not boot");
  await pause(50);
}
const systemctl = fs.readFileSync(`${dir}/systemctl`, "utf8").split(" ");
const sysctl = (...args) => execFileSync(systemctl[0], [...systemctl.slice(1), ...args]).toString().trim();

async function measure(rt, verb) {
  const port = ports[rt];
  const first = await greet(port);
  if (typeof first !== "number") throw new Error(`${rt}: ${first}`);
  const times = [], failures = [];
  let going = true;
  const loops = Array.from({ length: 4 }, async () => {
    while (going) {
      const r = await greet(port);
      if (typeof r === "number") times.push(r);
      else failures.push(r);
    }
  });
  const pids = new Set();
  for (let i = 0; i < RELOADS; i++) {
    await pause(1000);
    const held = await greet(port, true);
    const before = sysctl("show", "-P", "MainPID", `echo-${rt}.service`);
    const done = new Promise((r) => {
      const c = spawn(systemctl[0], [...systemctl.slice(1), verb, `echo-${rt}.service`], { stdio: "ignore" });
      c.once("exit", r);
    });
    await pause(1000);
    if (typeof held === "object") held.end("bye\n");
    await done;
    // The next reload starts once the successor is the main process.
    for (let j = 0; j < 400 && sysctl("show", "-P", "MainPID", `echo-${rt}.service`) === before; j++) {
      await pause(25);
    }
    pids.add(sysctl("show", "-P", "MainPID", `echo-${rt}.service`));
  }
  await pause(1000);
  going = false;
  await Promise.all(loops);
  times.sort((a, b) => a - b);
  const q = (f) => times[Math.min(times.length - 1, Math.floor(f * times.length))];
  return {
    n: times.length,
    p50: q(0.5),
    p99: q(0.99),
    max: times.at(-1),
    failed: failures.length,
    pids: pids.size,
    active: sysctl("is-active", `echo-${rt}.service`),
  };
}

const rows = [];
try {
  for (const rt of Object.keys(CMD)) {
    for (const verb of ["restart", "reload"]) {
      console.error(`sd_reload bench: ${rt} systemctl ${verb} (${RELOADS} times)`);
      rows.push([rt, verb, await measure(rt, verb)]);
    }
  }
} finally {
  fs.writeFileSync(`${dir}/done`, "");
  await new Promise((r) => boot.once("exit", r));
}
const f = (x) => x.toFixed(1);
console.log(
  `| ${RELOADS} × systemctl, 1 conn held 1 s | command | connections | p50 ms | p99 ms | max ms | failed |`,
);
console.log("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
for (const [rt, verb, r] of rows) {
  console.log(`| ${rt} | ${verb} | ${r.n} | ${f(r.p50)} | ${f(r.p99)} | ${f(r.max)} | ${r.failed} |`);
  if (r.pids !== RELOADS || r.active !== "active") {
    console.error(`${rt} ${verb}: ${r.pids} main PIDs, ${r.active}`);
  }
}
fs.rmSync(dir, { recursive: true, force: true });

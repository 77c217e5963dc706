// serve()'s node:http <-> fetch bridge in Node against node:http itself, srvx
// (FastResponse) and @hono/node-server v2, on a socket activated by
// systemd-socket-activate, under each supported Node line. `node
// bench/http-node.mjs` (needs wrk and taskset);
// markdown on stdout, progress on stderr.
//
// Two cases: "hello" (GET, "Hello, World!" as text/plain; serve()'s handler
// is a plain `new Response("Hello, World!")`) and "echo" (a 38-byte JSON
// POST read, parsed and answered as JSON: `Response.json(await
// request.json())`). Servers: bench/http/bridge-server.mjs. Per Node line and
// case, every variant runs at once on its own port (server pinned to CPU 1,
// wrk to CPU 0: wrk -t1 -c64, keep-alive); after a 1 s warm-up each, the
// variants take turns for BRIDGE_ROUNDS rounds (A B C D, then D C B A, ...),
// BRIDGE_SECONDS s each. Two figures per run: requests/s (wrk) and the
// server's CPU time per request (utime + stime from /proc/PID/stat over the
// run, divided by the requests wrk completed), the one that holds up when the
// machine is shared. Reported: medians, and each variant's ratio to node:http
// as the median of the per-round ratios (for CPU, node:http's CPU per request
// over the variant's: above 1 is cheaper). Every server's first answer is
// checked, and every wrk run must end without errors or non-2xx answers.
//
// Knobs: BRIDGE_NODES (default "node22 node24 node26", node_modules/<line>),
// BRIDGE_CASES ("hello echo"), BRIDGE_VARIANTS ("node-http serve serve-fast srvx hono";
// node-http always runs; "response", a plain Response built and read with no
// bridge, on request), BRIDGE_ROUNDS (5), BRIDGE_SECONDS (2), BRIDGE_CONNS (64).
import { execFile, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import net from "node:net";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const SSA = "/usr/bin/systemd-socket-activate";
const HOST = "127.0.0.1";
const list = (name, def) => (process.env[name] ?? def).split(/\s+/).filter(Boolean);
const NODES = list("BRIDGE_NODES", "node22 node24 node26");
const CASES = list("BRIDGE_CASES", "hello echo");
const VARIANTS = [
  "node-http",
  ...list("BRIDGE_VARIANTS", "node-http serve serve-fast srvx hono").filter((v) => v !== "node-http"),
];
const ROUNDS = Number(process.env.BRIDGE_ROUNDS ?? 5);
const SECONDS = Number(process.env.BRIDGE_SECONDS ?? 2);
const CONNS = Number(process.env.BRIDGE_CONNS ?? 64);
const TICK_US = 1e6 / 100; // USER_HZ: /proc/PID/stat counts in 1/100 s on Linux
const POST = resolve(ROOT, "bench/http/post.lua");
const log = (s) => process.stderr.write(s);

const live = new Set();
process.on("exit", () => {
  for (const c of live) {
    try {
      process.kill(c.pid, "SIGKILL");
    } catch { /* gone */ }
  }
});
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(130));

function freePort() {
  return new Promise((ok, fail) => {
    const s = net.createServer().once("error", fail);
    s.listen({ port: 0, host: HOST, exclusive: true }, () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** One request on a fresh connection; resolves with the raw answer. */
function ask(port, kase, ms) {
  return new Promise((ok, fail) => {
    const s = net.connect(port, HOST);
    let data = "";
    const timer = setTimeout(() => (s.destroy(), fail(new Error("no answer"))), ms);
    const body = '{"hello":"world"}';
    s.on("connect", () =>
      s.write(
        kase === "hello"
          ? `GET / HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`
          : `POST / HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
            `Content-Length: ${body.length}\r\n\r\n${body}`,
      ));
    s.on("data", (d) => (data += d));
    s.on("error", (e) => (clearTimeout(timer), fail(e)));
    s.on("close", () => (clearTimeout(timer), ok(data)));
  });
}

async function startServer(node, variant, kase) {
  const port = await freePort();
  const bin = resolve(ROOT, "node_modules", node, "bin/node");
  const child = spawn("taskset", [
    "-c",
    "1",
    SSA,
    "-l",
    `${HOST}:${port}`,
    bin,
    "bench/http/bridge-server.mjs",
    variant,
    kase,
  ], {
    cwd: ROOT,
    stdio: ["ignore", "ignore", "pipe"],
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
  });
  live.add(child);
  let err = "";
  let exited = false;
  child.stderr.on("data", (d) => (err += d));
  child.on("exit", () => (exited = true, live.delete(child)));
  const want = kase === "hello" ? "Hello, World!" : '{"hello":"world"}';
  const deadline = Date.now() + 20000;
  for (;;) {
    if (exited) {
      throw new Error(`${node} ${variant} ${kase} exited: ${err.trim().split("\n").slice(-3).join(" | ")}`);
    }
    try {
      const a = await ask(port, kase, 5000);
      if (!a.startsWith("HTTP/1.1 200") || !a.endsWith(want)) {
        throw new Error(`${node} ${variant} ${kase} answered ${JSON.stringify(a.slice(0, 300))}`);
      }
      break;
    } catch (e) {
      if (e.message.includes("answered") || Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    port,
    pid: child.pid,
    async stop() {
      if (exited) return;
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 3000);
      await new Promise((r) => (exited ? r() : child.once("exit", r)));
      clearTimeout(t);
    },
  };
}

/** utime + stime of a process, in clock ticks. */
function cpuTicks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(f[11]) + Number(f[12]); // fields 14 and 15 of proc(5)
}

function wrk(server, kase, seconds) {
  const args = ["-c", "0", "wrk", "-t1", `-c${CONNS}`, `-d${seconds}s`];
  if (kase === "echo") args.push("-s", POST);
  args.push(`http://${HOST}:${server.port}/`);
  const before = cpuTicks(server.pid);
  return new Promise((ok, fail) => {
    execFile("taskset", args, { timeout: (seconds + 15) * 1000 }, (e, out) => {
      if (e) return fail(e);
      const ticks = cpuTicks(server.pid) - before;
      const rps = Number(/Requests\/sec:\s*([\d.]+)/.exec(out)?.[1]);
      const total = Number(/(\d+) requests in/.exec(out)?.[1]);
      const bad = /Non-2xx or 3xx responses: (\d+)/.exec(out);
      const errors = /Socket errors: (.*)/.exec(out);
      if (bad || errors || !(rps > 0) || !(total > 0)) {
        return fail(new Error(`wrk reported a failure:\n${out}`));
      }
      ok({ rps, cpu: (ticks * TICK_US) / total });
    });
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main() {
  for (const tool of [SSA, "/usr/bin/wrk", "/usr/bin/taskset"]) {
    if (!existsSync(tool)) throw new Error(`${tool} is missing (apt-get install -y wrk)`);
  }
  if (!existsSync(resolve(ROOT, "dist/node.js"))) throw new Error("dist/ is missing: node_modules/.bin/tsup");
  const rows = [];
  for (const node of NODES) {
    const version = await new Promise((ok) =>
      execFile(
        resolve(ROOT, "node_modules", node, "bin/node"),
        ["--version"],
        (e, out) => ok(e ? node : out.trim()),
      )
    );
    for (const kase of CASES) {
      const servers = [];
      try {
        for (const v of VARIANTS) {
          log(`${version} ${kase}: starting ${v}\n`);
          servers.push({ v, s: await startServer(node, v, kase), rps: [], cpu: [] });
        }
        for (const x of servers) await wrk(x.s, kase, 1);
        for (let round = 0; round < ROUNDS; round++) {
          for (const x of round % 2 ? [...servers].reverse() : servers) {
            const r = await wrk(x.s, kase, SECONDS);
            x.rps.push(r.rps);
            x.cpu.push(r.cpu);
            log(
              `${version} ${kase} ${round + 1}/${ROUNDS} ${x.v}: ${r.rps.toFixed(0)} req/s, ${
                r.cpu.toFixed(1)
              } µs CPU/req\n`,
            );
          }
        }
      } finally {
        await Promise.all(servers.map((x) => x.s.stop()));
      }
      const base = servers[0];
      for (const x of servers) {
        rows.push({
          version,
          kase,
          v: x.v,
          rps: median(x.rps),
          rpsRatio: median(x.rps.map((r, i) => r / base.rps[i])),
          cpu: median(x.cpu),
          cpuRatio: median(x.cpu.map((c, i) => base.cpu[i] / c)),
        });
      }
    }
  }
  console.log(
    `\n### serve() in Node against node:http, srvx and @hono/node-server (wrk -t1 -c${CONNS}, keep-alive, ` +
      `${ROUNDS} interleaved rounds of ${SECONDS} s, server on CPU 1, wrk on CPU 0)\n`,
  );
  console.log("| Node | case | server | req/s | ratio to node:http | CPU µs/req | CPU ratio to node:http |");
  console.log("|---|---|---|---|---|---|---|");
  for (const r of rows) {
    console.log(
      `| ${r.version} | ${r.kase} | ${r.v} | ${(r.rps / 1000).toFixed(1)}k | ${r.rpsRatio.toFixed(2)} | ${
        r.cpu.toFixed(1)
      } | ${r.cpuRatio.toFixed(2)} |`,
    );
  }
}

await main().catch((e) => {
  log(`bench/http-node: ${e.stack ?? e}\n`);
  process.exitCode = 1;
});

// HTTP requests/s (issue 4): `node bench/http.mjs` alone (every alternative
// measured, several minutes), or part 4 of `npm run bench` (bench/run.sh:
// the package's serve() against the baselines only). Progress goes to
// stderr, the markdown table to stdout.
//
// Per runtime, the runtime's fastest server on an ordinary port (the
// baseline: node:http, Deno.serve, Bun.serve) and servers on a socket
// activated by systemd-socket-activate (the package's serve() through its
// fast path, the same forced onto node:http with SOCKET_ACTIVATE_HTTP_FAST=0,
// and the hand-written alternatives in bench/http/server.mjs), all answering
// GET with "Hello, World!". wrk -t1 -c64 keep-alive for HTTP_SECONDS each,
// the variants interleaved (A B C, then C B A, ...) for HTTP_ROUNDS rounds
// after one unmeasured warm-up each; medians, min-max, the ratio of the
// medians to the baseline's, and the median of each round's own ratio (the
// robust one when the machine's load drifts). The server runs pinned to CPU 1 (taskset), wrk
// to CPU 0. Every server is checked to answer "Hello, World!" before it is
// measured, started by this driver and stopped by PID.
//
// Knobs (environment): HTTP_ROUNDS (default 5, min 3), HTTP_SECONDS (per
// wrk run, default 3), HTTP_CONNS (wrk -c, default 64), HTTP_RUNTIMES
// (default "node deno bun"), HTTP_VARIANTS (a space-separated subset of the
// variant names below, default all; the baselines always run).
import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import net from "node:net";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const SSA = "/usr/bin/systemd-socket-activate";
const HOST = "127.0.0.1";
const BODY = "Hello, World!";

const intEnv = (name, def, min) => {
  const v = process.env[name] === undefined ? def : Number(process.env[name]);
  if (!Number.isInteger(v) || v < min) throw new Error(`${name} must be an integer >= ${min}`);
  return v;
};
const ROUNDS = intEnv("HTTP_ROUNDS", 5, 3);
const SECONDS = intEnv("HTTP_SECONDS", 3, 1);
const CONNS = intEnv("HTTP_CONNS", 64, 1);
const RUNTIMES = (process.env.HTTP_RUNTIMES ?? "node deno bun").split(/\s+/).filter(Boolean);
const ONLY = process.env.HTTP_VARIANTS?.split(/\s+/).filter(Boolean);
// Server on CPU 1, load generator on CPU 0: they never share a core.
const SERVER_CPU = process.env.HTTP_SERVER_CPU ?? "1";
const CLIENT_CPU = process.env.HTTP_CLIENT_CPU ?? "0";

const BIN = {
  node: process.execPath,
  deno: resolve(ROOT, "node_modules/.bin/deno"),
  bun: resolve(ROOT, "node_modules/.bin/bun"),
};
const RUN = {
  node: (f) => [BIN.node, f],
  deno: (f) => [BIN.deno, "run", "-A", f],
  bun: (f) => [BIN.bun, "run", f],
};
const SERVER = "bench/http/server.mjs";

/**
 * Per runtime: the baseline (the runtime's fastest server on an ordinary
 * port) first, then what is compared with it on the activated socket.
 */
const VARIANTS = {
  node: [
    ["node-http-port", "node:http on a port (baseline)"],
    ["pkg-serve", "serve() on the fd (node:http: Node has no fast path)"],
    ["node-http-fd", "node:http listen({ fd })"],
    ["node-bridge-fd", "node:http listen({ fd }) + hand-written fetch bridge"],
  ],
  deno: [
    ["deno-serve-port", "Deno.serve on a port (baseline)"],
    ["pkg-serve", "serve() on the fd (fast path)"],
    ["pkg-serve-supported", "serve() on the fd, SOCKET_ACTIVATE_HTTP_FAST=0 (node:http)"],
    ["deno-fast-fd", "fast path: serveHttpOnConnection on node:net's taken streams"],
    ["deno-servehttp-fd", "deprecated Deno.serveHttp on node:net's taken streams"],
    ["deno-http-fd", "node:http listen({ fd })"],
    ["deno-bridge-fd", "node:http listen({ fd }) + hand-written fetch bridge"],
  ],
  bun: [
    ["bun-serve-port", "Bun.serve on a port (baseline)"],
    ["pkg-serve", "serve() on the fd (fast path)"],
    ["pkg-serve-supported", "serve() on the fd, SOCKET_ACTIVATE_HTTP_FAST=0 (node:net relay + node:http)"],
    ["bun-fast-fd", "fast path: Bun.serve with the fd dup3()'d under its listener"],
    ["bun-relay-fd", "Bun.listen({ fd }) relaying to a private Bun.serve (unix)"],
    ["bun-emit-fd", "node:net listen({ fd }) + http emit('connection')"],
    ["bun-emit-bridge-fd", "node:net + emit('connection') + hand-written fetch bridge"],
  ],
};

const log = (s) => process.stderr.write(s);

const live = new Set();
const killAll = () => {
  for (const c of live) {
    try {
      process.kill(c.pid, "SIGKILL");
    } catch { /* gone */ }
  }
};
process.on("exit", killAll);
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(130));

function freePort() {
  return new Promise((ok, fail) => {
    const s = net.createServer();
    s.once("error", fail);
    s.listen({ port: 0, host: HOST, exclusive: true }, () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** One GET on a fresh connection: the body, or an error after `ms`. */
function get(port, ms) {
  return new Promise((ok, fail) => {
    const s = net.connect(port, HOST);
    let data = "";
    const timer = setTimeout(() => (s.destroy(), fail(new Error("no answer"))), ms);
    s.on("connect", () => s.write(`GET / HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`));
    s.on("data", (d) => (data += d));
    s.on("error", (e) => (clearTimeout(timer), fail(e)));
    s.on("close", () => (clearTimeout(timer), ok(data)));
  });
}

async function startServer(rt, variant) {
  const port = await freePort();
  const fd = variant.endsWith("-fd") || variant.startsWith("pkg-serve");
  const cmd = fd
    ? [
      SSA,
      "-l",
      `${HOST}:${port}`,
      "-E",
      "DENO_NO_UPDATE_CHECK=1",
      "-E",
      "NO_COLOR=1",
      ...(variant === "pkg-serve-supported" ? ["-E", "SOCKET_ACTIVATE_HTTP_FAST=0"] : []),
      ...RUN[rt](SERVER),
      variant,
    ]
    : [...RUN[rt](SERVER), variant, String(port)];
  // taskset execs the command (and systemd-socket-activate execs the
  // runtime): the PID stays the server's, LISTEN_PID stays right.
  const child = spawn("taskset", ["-c", SERVER_CPU, ...cmd], {
    cwd: ROOT,
    stdio: ["ignore", "ignore", "pipe"],
    env: { PATH: process.env.PATH, HOME: process.env.HOME, DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
  });
  live.add(child);
  let err = "";
  child.stderr.on("data", (d) => (err += d));
  let exited = false;
  child.on("exit", () => (exited = true, live.delete(child)));
  const deadline = Date.now() + 20000;
  for (;;) {
    if (exited) throw new Error(`${rt} ${variant} exited: ${err.trim().split("\n").slice(-3).join(" | ")}`);
    try {
      const answer = await get(port, 5000);
      if (!answer.startsWith("HTTP/1.1 200") || !answer.includes(BODY)) {
        throw new Error(`${rt} ${variant} answered ${JSON.stringify(answer.slice(0, 200))}`);
      }
      break;
    } catch (e) {
      if (e.message.includes("answered") || Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    port,
    async stop() {
      if (exited) return;
      child.kill("SIGTERM");
      const gone = await Promise.race([
        new Promise((r) => child.once("exit", () => r(true))),
        new Promise((r) => setTimeout(() => r(false), 3000)),
      ]);
      if (!gone) child.kill("SIGKILL");
    },
  };
}

function wrk(port, seconds) {
  return new Promise((ok, fail) => {
    execFile(
      "taskset",
      ["-c", CLIENT_CPU, "wrk", "-t1", `-c${CONNS}`, `-d${seconds}s`, `http://${HOST}:${port}/`],
      { timeout: (seconds + 15) * 1000 },
      (e, out) => {
        if (e) return fail(e);
        const rps = Number(/Requests\/sec:\s*([\d.]+)/.exec(out)?.[1]);
        const non2xx = Number(/Non-2xx or 3xx responses:\s*(\d+)/.exec(out)?.[1] ?? 0);
        const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
        const errors = non2xx + (sock ? sock.slice(1).reduce((n, x) => n + Number(x), 0) : 0);
        if (!Number.isFinite(rps)) return fail(new Error(`wrk printed no rate:\n${out}`));
        ok({ rps, errors });
      },
    );
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const k = (x) => `${(x / 1000).toFixed(1)}k`;

async function main() {
  for (const tool of [SSA, "/usr/bin/wrk", "/usr/bin/taskset"]) {
    if (!existsSync(tool)) throw new Error(`${tool} is missing (wrk: apt-get install -y wrk)`);
  }
  const results = [];
  for (const rt of RUNTIMES) {
    const servers = [];
    for (const [variant, label] of VARIANTS[rt]) {
      if (ONLY && !ONLY.includes(variant) && !variant.endsWith("-port")) continue;
      try {
        log(`${rt}: starting ${variant}\n`);
        servers.push({ variant, label, server: await startServer(rt, variant), runs: [], errors: 0 });
      } catch (e) {
        log(`${rt}: ${variant} skipped: ${e.message}\n`);
        results.push({ rt, variant, label, skipped: e.message });
      }
    }
    try {
      for (const s of servers) await wrk(s.server.port, 1); // warm-up, unmeasured
      for (let round = 0; round < ROUNDS; round++) {
        // A B C, then C B A: no variant always follows the same one.
        const order = round % 2 === 0 ? servers : [...servers].reverse();
        for (const s of order) {
          const { rps, errors } = await wrk(s.server.port, SECONDS);
          s.runs.push(rps);
          s.errors += errors;
          log(
            `${rt} round ${round + 1}/${ROUNDS}: ${s.variant} ${k(rps)} req/s${
              errors ? `, ${errors} errors` : ""
            }\n`,
          );
        }
      }
    } finally {
      await Promise.all(servers.map((s) => s.server.stop()));
    }
    const base = servers[0]?.runs ?? [];
    for (const s of servers) {
      results.push({
        rt,
        variant: s.variant,
        label: s.label,
        median: median(s.runs),
        min: Math.min(...s.runs),
        max: Math.max(...s.runs),
        ratio: median(s.runs) / median(base),
        // The load of a shared machine drifts: each round's own ratio
        // compares runs seconds apart, their median is the robust figure.
        roundRatio: median(s.runs.map((x, i) => x / base[i])),
        errors: s.errors,
      });
    }
  }
  console.log(
    `\n### HTTP requests/s (wrk -t1 -c${CONNS}, ${SECONDS} s per run, ${ROUNDS} interleaved rounds, ` +
      `server on CPU ${SERVER_CPU}, wrk on CPU ${CLIENT_CPU}; "Hello, World!", keep-alive)\n`,
  );
  console.log(
    "| runtime | server | req/s median | min - max | ratio of medians | median of per-round ratios | errors |",
  );
  console.log("|---|---|---|---|---|---|---|");
  for (const r of results) {
    if (r.skipped) {
      console.log(`| ${r.rt} | ${r.label} | - | - | not run: ${r.skipped.replace(/\|/g, "/")} | - | - |`);
    } else {
      console.log(
        `| ${r.rt} | ${r.label} | ${k(r.median)} | ${k(r.min)} - ${k(r.max)} | ${r.ratio.toFixed(2)} | ${
          r.roundRatio.toFixed(2)
        } | ${r.errors} |`,
      );
    }
  }
}

await main().catch((e) => {
  log(`bench/http: ${e.stack ?? e}\n`);
  process.exitCode = 1;
});

// The benchmark driver (run it through bench/run.sh, which explains what is
// measured). Progress goes to stderr, the markdown tables to stdout.
//
// Environment knobs: BENCH_STARTUP_SAMPLES (default 41, min 15),
// BENCH_ROUNDS (throughput rounds, default 11, min 3), BENCH_MIB (MiB per
// connection, default 32), BENCH_CONNS (default 8), BENCH_RUNTIMES (default
// "node deno bun"), BENCH_NODE (the node binary, default the one running this;
// bench/run.sh passes Node 26's).
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import net from "node:net";
import { dirname, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { runLoad } from "./load.mjs";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const SSA = "/usr/bin/systemd-socket-activate";
const HOST = "127.0.0.1";
const GREETING_TRUE = "OHAI! systemd socket: true\n";

const intEnv = (name, def, min) => {
  const v = process.env[name] === undefined ? def : Number(process.env[name]);
  if (!Number.isInteger(v) || v < min) throw new Error(`${name} must be an integer >= ${min}`);
  return v;
};
const STARTUP_SAMPLES = intEnv("BENCH_STARTUP_SAMPLES", 41, 15);
const ROUNDS = intEnv("BENCH_ROUNDS", 11, 3);
const MIB = intEnv("BENCH_MIB", 32, 1);
const CONNS = intEnv("BENCH_CONNS", 8, 1);
const RUNTIMES = (process.env.BENCH_RUNTIMES ?? "node deno bun").split(/\s+/).filter(Boolean);

const BIN = {
  node: process.env.BENCH_NODE ? resolve(process.env.BENCH_NODE) : process.execPath,
  deno: resolve(ROOT, "node_modules/.bin/deno"),
  bun: resolve(ROOT, "node_modules/.bin/bun"),
};
// How each runtime runs a file: the package's own documented way for mod.ts.
const run = {
  node: (f) => [BIN.node, f],
  deno: (f) => [BIN.deno, "run", "-A", f],
  bun: (f) => [BIN.bun, "run", f],
};
const CMD = {
  pkg: {
    node: [BIN.node, "dist/cli.cjs", "--quiet"],
    deno: [...run.deno("mod.ts"), "--quiet"],
    bun: [...run.bun("mod.ts"), "--quiet"],
  },
  greeter: {
    node: run.node("bench/greeter-node.cjs"),
    deno: run.deno("bench/greeter-deno.mjs"),
    bun: run.bun("bench/greeter-bun.mjs"),
  },
  imported: {
    node: run.node("bench/imported-node.cjs"),
    deno: run.deno("bench/imported.mjs"),
    bun: run.bun("bench/imported.mjs"),
  },
  native: {
    node: run.node("bench/echo-node.mjs"),
    deno: run.deno("bench/echo-deno.mjs"),
    bun: run.bun("bench/echo-bun.mjs"),
  },
};
// systemd-socket-activate passes only TERM PATH HOME LISTEN_*; same extras for every variant.
const SSA_ENV = ["-E", "DENO_NO_UPDATE_CHECK=1", "-E", "NO_COLOR=1"];

const log = (s) => process.stderr.write(s);

// ---------------------------------------------------------------- processes

/** Every child still alive, so that any way out kills them (by PID). */
const live = new Set();
function killAllNow() {
  for (const c of live) {
    try {
      process.kill(c.pid, "SIGKILL");
    } catch { /* gone */ }
  }
}
process.on("exit", killAllNow);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    log(`\nbench: ${sig}, killing ${live.size} child process(es)\n`);
    killAllNow();
    process.exit(128 + ({ SIGHUP: 1, SIGINT: 2, SIGTERM: 15 })[sig]);
  });
}

function withTimeout(promise, ms, what) {
  let t;
  return Promise.race([
    promise,
    new Promise((_, rej) => (t = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms))),
  ]).finally(() => clearTimeout(t));
}

/** Spawns with stdout/stderr captured (the last 4 KiB of each) and an `exited` promise. */
function start(argv, what) {
  const env = { ...process.env, DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" };
  const child = spawn(argv[0], argv.slice(1), { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  const p = { child, pid: child.pid, what, out: "", err: "", code: undefined };
  if (p.pid === undefined) throw new Error(`could not start ${what}: ${argv.join(" ")}`);
  live.add(child);
  const keep = (k) => (d) => (p[k] = (p[k] + d.toString()).slice(-4096));
  child.stdout.on("data", keep("out"));
  child.stderr.on("data", keep("err"));
  p.exited = new Promise((res) =>
    child.on("exit", (code, signal) => {
      live.delete(child);
      p.code = code ?? signal;
      res(p.code);
    })
  );
  child.on("error", (e) => (p.err += `\nspawn error: ${e.message}`));
  return p;
}

const alive = (p) => p.code === undefined;

/** SIGTERM, a bounded wait, then SIGKILL and another bounded wait; by PID only. */
async function stop(p) {
  for (const [sig, ms] of [["SIGTERM", 2000], ["SIGKILL", 2000]]) {
    if (!alive(p)) return;
    try {
      process.kill(p.pid, sig);
    } catch { /* already gone */ }
    await Promise.race([p.exited, new Promise((r) => setTimeout(r, ms))]);
  }
  if (alive(p)) throw new Error(`pid ${p.pid} (${p.what}) survived SIGKILL for 2 s`);
}

/** Waits until `test(p)` is true, polling on output; fails if the process exits first. */
async function waitFor(p, test, ms, what) {
  const t0 = performance.now();
  while (!test(p)) {
    if (!alive(p)) throw new Error(`${p.what} exited (${p.code}) before ${what}; stderr:\n${p.err.trim()}`);
    if (performance.now() - t0 > ms) {
      throw new Error(`${p.what}: no ${what} within ${ms} ms; stderr:\n${p.err.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 2));
  }
}

// -------------------------------------------------------------------- ports

const usedPorts = new Set();
/** A port the kernel hands out for bind(:0), never one this run used before. */
async function freshPort() {
  for (let i = 0; i < 100; i++) {
    const port = await new Promise((res, rej) => {
      const s = net.createServer();
      s.once("error", rej);
      s.listen({ port: 0, host: HOST, exclusive: true }, () => {
        const { port } = s.address();
        s.close(() => res(port));
      });
    });
    if (!usedPorts.has(port)) {
      usedPorts.add(port);
      return port;
    }
  }
  throw new Error("no fresh port from the kernel after 100 tries");
}

/** systemd-socket-activate listening on a fresh port, CMD not exec'd yet (retries EADDRINUSE). */
async function activator(cmd, what) {
  for (let attempt = 1;; attempt++) {
    const port = await freshPort();
    const p = start([SSA, "-l", `${HOST}:${port}`, ...SSA_ENV, ...cmd], `systemd-socket-activate ${what}`);
    try {
      await waitFor(p, (q) => q.err.includes(`Listening on ${HOST}:${port}`), 5000, "'Listening on' line");
      return { p, port };
    } catch (e) {
      await stop(p);
      if (attempt < 5 && /Address already in use/.test(p.err)) continue;
      throw e;
    }
  }
}

// ----------------------------------------------------------------- start-up

/** Connects, resolves with the time of the first byte and then the full greeting line. */
function connectAndGreet(port) {
  const sock = net.connect({ port, host: HOST });
  sock.on("error", () => {});
  const t0 = performance.now();
  let first, buf = "";
  const greeting = new Promise((res, rej) => {
    sock.on("data", (d) => {
      first ??= performance.now();
      buf += d.toString("latin1");
      if (buf.includes("\n")) res({ ms: first - t0, line: buf });
    });
    sock.on("error", (e) => rej(new Error(`connection: ${e.message}`)));
    sock.on("close", () => rej(new Error(`connection closed; received ${JSON.stringify(buf)}`)));
  });
  greeting.catch(() => {});
  return { sock, t0, greeting };
}

/** Sends a line and checks it comes back upper-cased. */
function checkEcho(sock) {
  return new Promise((res, rej) => {
    let buf = "";
    sock.removeAllListeners("data");
    sock.on("data", (d) => {
      buf += d.toString("latin1");
      if (buf === "PING ABC-XYZ 123\n") res();
      else if (buf.length >= 17) rej(new Error(`echo check: got ${JSON.stringify(buf)}`));
    });
    sock.write("ping abc-xyz 123\n");
  });
}

/** One cold start: fresh activator and port; CMD is exec'd by our connection. Returns ms. */
async function startupSample(variant, rt) {
  const what = `${rt} ${variant}`;
  const { p, port } = await activator(CMD[variant][rt], what);
  let sock;
  try {
    const c = connectAndGreet(port);
    sock = c.sock;
    const died = p.exited.then((code) => {
      throw new Error(`exited (${code}) before the greeting`);
    });
    died.catch(() => {}); // settles later, when stop() kills it
    const { ms, line } = await withTimeout(
      Promise.race([c.greeting, died]),
      15000,
      `${what} greeting`,
    ).catch((e) => {
      throw new Error(`${what}: ${e.message}; stderr:\n${p.err.trim()}`);
    });
    if (line !== GREETING_TRUE) {
      throw new Error(`${what}: greeting ${JSON.stringify(line)}, expected ${JSON.stringify(GREETING_TRUE)}`);
    }
    await withTimeout(checkEcho(sock), 5000, `${what} echo check`);
    return ms;
  } finally {
    sock?.destroy();
    await stop(p);
  }
}

// --------------------------------------------------------------- throughput

const loadOpts = { conns: CONNS, bytesPerConn: MIB * 1048576, timeoutMs: 90_000 };

/** (a) the package under systemd-socket-activate: one greeting to exec it, a warm-up, then the load. */
async function throughputPkg(rt) {
  const what = `${rt} package echo (activated)`;
  const { p, port } = await activator(CMD.pkg[rt], what);
  try {
    const c = connectAndGreet(port);
    const { line } = await withTimeout(c.greeting, 15000, `${what} greeting`).catch((e) => {
      throw new Error(`${what} failed to start: ${e.message}; stderr:\n${p.err.trim()}`);
    });
    c.sock.destroy();
    if (line !== GREETING_TRUE) throw new Error(`${what}: greeting ${JSON.stringify(line)}`);
    await runLoad({ ...loadOpts, port, bytesPerConn: 1048576, expectActivated: true });
    return (await runLoad({ ...loadOpts, port, expectActivated: true })).mibps;
  } catch (e) {
    const more = alive(p) || e.message.includes(p.err.trim())
      ? ""
      : `\n${what} exited (${p.code}); stderr:\n${p.err.trim()}`;
    throw new Error(e.message + more);
  } finally {
    await stop(p);
  }
}

/** (b) the runtime's native echo server on an ordinary port. */
async function throughputNative(rt) {
  const what = `${rt} native echo`;
  const port = await freshPort();
  const p = start([...CMD.native[rt], String(port)], what);
  try {
    await waitFor(p, (q) => q.out.includes("READY"), 15000, "READY line").catch((e) => {
      throw new Error(`${what} failed to start: ${e.message}`);
    });
    await runLoad({ ...loadOpts, port, bytesPerConn: 1048576, expectActivated: false });
    return (await runLoad({ ...loadOpts, port, expectActivated: false })).mibps;
  } catch (e) {
    const more = alive(p) || e.message.includes(p.err.trim())
      ? ""
      : `\n${what} exited (${p.code}); stderr:\n${p.err.trim()}`;
    throw new Error(e.message + more);
  } finally {
    await stop(p);
  }
}

// -------------------------------------------------------------- statistics

function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  const i = (s.length - 1) * q, lo = Math.floor(i), hi = Math.ceil(i);
  return s[lo] + (s[hi] - s[lo]) * (i - lo);
}
const median = (xs) => quantile(xs, 0.5);
const f1 = (x) => x.toFixed(1);
const sign = (x) => (x >= 0 ? "+" : "−") + Math.abs(x).toFixed(1);
const table = (head, rows) =>
  [
    `| ${head.join(" | ")} |`,
    `|${head.map(() => "---").join("|")}|`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
function spreadRows(results, label, unit) {
  return Object.entries(results).map(([k, xs]) => [
    label(k),
    xs.length,
    ...[0, 0.25, 0.5, 0.75, 1].map((q) => f1(quantile(xs, q)) + unit),
  ]);
}

// ---------------------------------------------------------------------- main

async function main() {
  const tStart = performance.now();
  for (const rt of RUNTIMES) {
    if (!BIN[rt] || !existsSync(BIN[rt])) throw new Error(`unknown or missing runtime ${rt}`);
  }
  if (!existsSync(SSA)) throw new Error(`${SSA} not found (systemd's systemd-socket-activate)`);
  if (!existsSync(resolve(ROOT, "dist/cli.cjs"))) {
    throw new Error("dist/cli.cjs is missing: build with node_modules/.bin/tsup");
  }

  // 1. Start-up. One unmeasured warm-up per variant (Deno's module cache, page cache), then
  // rounds that interleave every variant: node pkg, node greeter, node imported, deno pkg, ...
  const VARIANTS = ["pkg", "greeter", "imported"];
  const startup = {};
  log(`start-up: warm-up`);
  for (const rt of RUNTIMES) {
    for (const v of VARIANTS) {
      await startupSample(v, rt);
      startup[`${rt} ${v}`] = [];
      log(".");
    }
  }
  log(`\nstart-up: ${STARTUP_SAMPLES} rounds of ${RUNTIMES.length * VARIANTS.length} cold starts `);
  for (let i = 0; i < STARTUP_SAMPLES; i++) {
    for (const rt of RUNTIMES) {
      for (const v of VARIANTS) startup[`${rt} ${v}`].push(await startupSample(v, rt));
    }
    log(".");
  }
  const tStartup = performance.now();
  log(` ${((tStartup - tStart) / 1000).toFixed(0)} s\n`);

  // 2. Throughput, package and native for each runtime round after round, the
  // package first in even rounds and second in odd ones (a fixed order would
  // give whatever the second run inherits, page cache or CPU clock, always to
  // the same side).
  const tput = {};
  for (const rt of RUNTIMES) tput[`${rt} pkg`] = [], tput[`${rt} native`] = [];
  log(`throughput: ${ROUNDS} rounds of ${RUNTIMES.length * 2} runs (${CONNS} x ${MIB} MiB) `);
  for (let i = 0; i < ROUNDS; i++) {
    for (const rt of RUNTIMES) {
      const runs = [["pkg", throughputPkg], ["native", throughputNative]];
      if (i % 2 === 1) runs.reverse();
      for (const [v, fn] of runs) tput[`${rt} ${v}`].push(await fn(rt));
    }
    log(".");
  }
  const tEnd = performance.now();
  log(` ${((tEnd - tStartup) / 1000).toFixed(0)} s\n`);

  // Tables.
  const version = (rt) => ({ node: nodeVersion, deno: denoVersion, bun: bunVersion })[rt];
  const out = [];
  out.push(`# socket-activate benchmark`, "");
  out.push(
    `${new Date().toISOString()} · ${RUNTIMES.map((rt) => `${rt} ${version(rt)}`).join(" · ")} · ` +
      `${(await import("node:os")).cpus().length} CPUs · total ${((tEnd - tStart) / 1000).toFixed(0)} s`,
    "",
  );
  out.push(
    `## Start-up under systemd-socket-activate: connect() → first byte of the greeting (median of ${STARTUP_SAMPLES} cold starts)`,
    "",
  );
  out.push(table(
    [
      "runtime",
      "package echo (a)",
      "hand-written fd-3 greeter (b)",
      "difference (a)−(b)",
      "ratio (a)/(b)",
      "greeter after loading the package (c)",
      "the loading alone (c)−(b)",
    ],
    RUNTIMES.map((rt) => {
      const a = median(startup[`${rt} pkg`]),
        b = median(startup[`${rt} greeter`]),
        c = median(startup[`${rt} imported`]);
      return [
        rt,
        `${f1(a)} ms`,
        `${f1(b)} ms`,
        `${sign(a - b)} ms`,
        `${(a / b).toFixed(2)}×`,
        `${f1(c)} ms`,
        `${sign(c - b)} ms`,
      ];
    }),
  ));
  out.push(
    "",
    "(c) is the greeter (b) after loading the package and using none of it (bench/imported*): Node",
    '`require("socket-activate")`, Deno and Bun `mod.ts`.',
    "",
  );
  out.push(
    `## Echo throughput: ${CONNS} connections × ${MIB} MiB, 64 KiB writes, echoed back upper-cased (median of ${ROUNDS} rounds)`,
    "",
  );
  out.push(table(
    [
      "runtime",
      "package echo, activated (a)",
      "native echo, own port (b)",
      "difference (a)−(b)",
      "ratio (a)/(b)",
      "per-round ratios: median (p25–p75)",
    ],
    RUNTIMES.map((rt) => {
      const as = tput[`${rt} pkg`], bs = tput[`${rt} native`];
      const a = median(as), b = median(bs);
      const paired = as.map((x, i) => x / bs[i]);
      return [
        rt,
        `${f1(a)} MiB/s`,
        `${f1(b)} MiB/s`,
        `${sign(a - b)} MiB/s`,
        `${(a / b).toFixed(2)}×`,
        `${median(paired).toFixed(2)}× (${quantile(paired, 0.25).toFixed(2)}–${
          quantile(paired, 0.75).toFixed(2)
        })`,
      ];
    }),
  ));
  out.push(
    "",
    "MiB/s = echoed payload (one direction) / time from the first write to the last byte back. A per-round",
    "ratio divides a round's package run by the native run next to it, which cancels drift between rounds.",
    "",
  );
  const names = {
    pkg: "package echo",
    greeter: "hand-written greeter",
    imported: "greeter after loading the package",
    native: "native echo",
  };
  const label = (k) => {
    const [rt, v] = k.split(" ");
    return `${rt} ${names[v]}`;
  };
  out.push("## Spread", "");
  out.push(table(["start-up", "n", "min", "p25", "median", "p75", "max"], spreadRows(startup, label, " ms")));
  out.push("");
  out.push(table(["throughput", "n", "min", "p25", "median", "p75", "max"], spreadRows(tput, label, "")));
  out.push("", "(throughput in MiB/s)");
  console.log(out.join("\n"));
}

async function versionOf(argv) {
  const p = start(argv, argv.join(" "));
  await withTimeout(p.exited, 15000, argv.join(" ")).catch(async (e) => {
    await stop(p);
    throw e;
  });
  return p.out.split("\n")[0].replace(/^(deno|bun)\s*/, "").replace(/\s*\(.*$/, "").trim();
}

let denoVersion = "", bunVersion = "", nodeVersion = process.version;
try {
  if (RUNTIMES.includes("node")) nodeVersion = await versionOf([BIN.node, "--version"]);
  if (RUNTIMES.includes("deno")) denoVersion = await versionOf([BIN.deno, "--version"]);
  if (RUNTIMES.includes("bun")) bunVersion = await versionOf([BIN.bun, "--version"]);
  await main();
  process.exit(0);
} catch (e) {
  log(`\nbench: FAILED: ${e.message}\n`);
  killAllNow();
  process.exit(1);
}

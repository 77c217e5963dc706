// Which node:http <-> fetch bridge serve() should use: requests per second of
// this package's own bridge against @hono/node-server and srvx, in Node, Deno
// and Bun, on an ordinary port (the bridge's cost does not depend on where
// the socket came from). `node bench/http-bridge.mjs` (needs wrk: Debian
// package `wrk`); prints a markdown table on stdout, progress on stderr.
//
// Every server is pinned to CPU 0 and wrk (1 thread, 50 keep-alive
// connections, GET /x, a 7-byte body) to CPU 1; after a 1 s warm-up each
// variant gets BRIDGE_SECONDS (default 3) s, the variants interleaved round
// by round (BRIDGE_ROUNDS, default 5); medians and the ratio to "hand" are
// reported. Every response is checked by wrk's non-2xx count and the
// server's first answer is checked by the driver. Servers are stopped by PID.
//
// Then the import cost of srvx/node (bench/http-import.mjs): IMPORT_SAMPLES
// (default 15) cold processes per runtime and variant, interleaved, each
// timing its own dynamic import()s with performance.now(); medians.
import { execFileSync, spawn } from "node:child_process";
import { dirname, resolve } from "node:path";
import net from "node:net";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const ROUNDS = Number(process.env.BRIDGE_ROUNDS ?? 5);
const SECONDS = Number(process.env.BRIDGE_SECONDS ?? 3);
const RUNTIMES = (process.env.BRIDGE_RUNTIMES ?? "node deno bun").split(/\s+/).filter(Boolean);
const VARIANTS = (process.env.BRIDGE_VARIANTS ?? "hand lazy hono srvx").split(/\s+/).filter(Boolean);
const server = resolve(ROOT, "bench/http-bridge-server.ts");
const CMD = {
  node: [process.execPath, "--import", "tsx", server],
  deno: [resolve(ROOT, "node_modules/.bin/deno"), "run", "-A", server],
  bun: [resolve(ROOT, "node_modules/.bin/bun"), "run", server],
};

function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer().once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

async function startServer(rt, variant) {
  const port = await freePort();
  const child = spawn("taskset", ["-c", "0", ...CMD[rt], variant, String(port)], {
    cwd: ROOT,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let err = "";
  child.stderr.on("data", (d) => (err += d));
  const deadline = Date.now() + 15000;
  while (!err.includes("ready")) {
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill("SIGKILL");
      throw new Error(`${rt} ${variant} did not start: ${err}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const body = await (await fetch(`http://127.0.0.1:${port}/x`)).text();
  if (body !== "hello /x") throw new Error(`${rt} ${variant} answered ${JSON.stringify(body)}`);
  return { child, port };
}

function wrk(port, seconds) {
  const out = execFileSync("taskset", [
    "-c",
    "1",
    "wrk",
    "-t1",
    "-c50",
    `-d${seconds}s`,
    `http://127.0.0.1:${port}/x`,
  ], { encoding: "utf8", timeout: (seconds + 20) * 1000 });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const bad = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const errors = /Socket errors: (.*)/.exec(out);
  if (bad || errors || !(rps > 0)) throw new Error(`wrk reported a failure:\n${out}`);
  return rps;
}

async function stop(child) {
  child.kill("SIGTERM");
  const t = setTimeout(() => child.kill("SIGKILL"), 3000);
  if (child.exitCode === null) await new Promise((r) => child.once("exit", r));
  clearTimeout(t);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const results = {};
for (let round = 0; round < ROUNDS; round++) {
  for (const rt of RUNTIMES) {
    for (const v of VARIANTS) {
      const { child, port } = await startServer(rt, v);
      try {
        wrk(port, 1); // warm-up (JIT)
        const rps = wrk(port, SECONDS);
        ((results[rt] ??= {})[v] ??= []).push(rps);
        process.stderr.write(`round ${round + 1}/${ROUNDS} ${rt} ${v}: ${rps.toFixed(0)} req/s\n`);
      } finally {
        await stop(child);
      }
    }
  }
}

console.log(`| runtime | ${VARIANTS.map((v) => `${v} req/s (ratio to hand)`).join(" | ")} |`);
console.log(`|---|${VARIANTS.map(() => "---").join("|")}|`);
for (const rt of RUNTIMES) {
  const base = median(results[rt].hand ?? [NaN]);
  const cells = VARIANTS.map((v) => {
    const m = median(results[rt][v]);
    return `${m.toFixed(0)} (${(m / base).toFixed(2)})`;
  });
  console.log(`| ${rt} | ${cells.join(" | ")} |`);
}

const SAMPLES = Number(process.env.IMPORT_SAMPLES ?? 15);
const importer = resolve(ROOT, "bench/http-import.mjs");
const ICMD = {
  node: [process.execPath, importer],
  deno: [resolve(ROOT, "node_modules/.bin/deno"), "run", "-A", importer],
  bun: [resolve(ROOT, "node_modules/.bin/bun"), "run", importer],
};
const times = {};
for (let i = 0; i < SAMPLES; i++) {
  for (const rt of RUNTIMES) {
    for (const v of ["base", "srvx"]) {
      const [cmd, ...args] = ICMD[rt];
      const ms = Number(
        execFileSync(cmd, [...args, v], { cwd: ROOT, encoding: "utf8", timeout: 30000 }).trim(),
      );
      if (!(ms >= 0)) throw new Error(`${rt} ${v}: no time printed`);
      ((times[rt] ??= {})[v] ??= []).push(ms);
    }
  }
}
console.log("");
console.log("| runtime | node:http (ms) | node:http + srvx/node (ms) | srvx/node adds (ms) |");
console.log("|---|---|---|---|");
for (const rt of RUNTIMES) {
  const b = median(times[rt].base), x = median(times[rt].srvx);
  console.log(`| ${rt} | ${b.toFixed(1)} | ${x.toFixed(1)} | ${(x - b).toFixed(1)} |`);
}

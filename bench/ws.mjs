// WebSocket echo throughput: messages/s of serve() with upgradeWebSocket()
// (the package's own RFC 6455 framing, runtimes/node_api/ws.ts) against the
// `ws` library on node:http, in Node, side by side, interleaved (A B B A ...).
// One client process (the `ws` library's client): WS_SOCKETS sockets (64),
// each echoing 1 KiB binary messages with WS_INFLIGHT (16) in flight, for
// WS_SECONDS (3) a round after a 1 s warm-up, WS_ROUNDS (6) rounds. Prints a
// markdown table. `node bench/ws.mjs` (about 1 minute).
import { spawn } from "node:child_process";
import * as net from "node:net";
import * as path from "node:path";

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const NODE = process.env.WS_NODE ?? path.join(ROOT, "node_modules/node26/bin/node");
const ROUNDS = Number(process.env.WS_ROUNDS ?? 6);
const SOCKETS = Number(process.env.WS_SOCKETS ?? 64);
const INFLIGHT = Number(process.env.WS_INFLIGHT ?? 16);
const SECONDS = Number(process.env.WS_SECONDS ?? 3);

const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });

function startServer(kind, port) {
  const child = spawn(NODE, ["--import", "tsx", path.join(ROOT, "bench/ws-server.ts")], {
    env: { ...process.env, PORT: String(port), WS_SERVER: kind },
    stdio: ["ignore", "ignore", "pipe"],
    cwd: ROOT,
  });
  let err = "";
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${kind} did not start: ${err}`)), 20000);
    child.stderr.on("data", (d) => {
      err += d;
      if (err.includes("ready")) {
        clearTimeout(t);
        resolve(child);
      }
    });
  });
}

// The client, in a process of its own so that it does not share the server's thread.
const CLIENT = `
const WS = (await import(${JSON.stringify(path.join(ROOT, "node_modules/ws/wrapper.mjs"))})).default;
const [url, sockets, inflight, seconds] = process.argv.slice(1);
const msg = Buffer.alloc(1024, 97);
let count = 0, counting = false;
const conns = await Promise.all(Array.from({ length: Number(sockets) }, () => new Promise((res, rej) => {
  const c = new WS(url); c.once("open", () => res(c)); c.once("error", rej);
})));
for (const c of conns) {
  c.on("message", (d) => { if (d.length !== 1024) throw new Error("bad echo " + d.length); if (counting) count++; c.send(msg); });
  for (let i = 0; i < Number(inflight); i++) c.send(msg);
}
await new Promise((r) => setTimeout(r, 1000));
counting = true; const t0 = performance.now();
await new Promise((r) => setTimeout(r, Number(seconds) * 1000));
const rate = count / ((performance.now() - t0) / 1000);
console.log(Math.round(rate));
process.exit(0);
`;

function runClient(port) {
  return new Promise((resolve, reject) => {
    const c = spawn(NODE, [
      "--input-type=module",
      "-e",
      CLIENT,
      `ws://127.0.0.1:${port}/`,
      SOCKETS,
      INFLIGHT,
      SECONDS,
    ], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "", err = "";
    c.stdout.on("data", (d) => (out += d));
    c.stderr.on("data", (d) => (err += d));
    const t = setTimeout(() => c.kill("SIGKILL"), (SECONDS + 20) * 1000);
    c.on("close", (code) => {
      clearTimeout(t);
      code === 0 ? resolve(Number(out.trim())) : reject(new Error(`client failed (${code}): ${err}`));
    });
  });
}

const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const kinds = ["pkg", "ws"];
const results = { pkg: [], ws: [] };
const ratios = [];
for (let r = 0; r < ROUNDS; r++) {
  const order = r % 2 === 0 ? kinds : [...kinds].reverse();
  const round = {};
  for (const k of order) {
    const port = await freePort();
    const server = await startServer(k, port);
    try {
      round[k] = await runClient(port);
    } finally {
      server.kill("SIGKILL");
    }
    results[k].push(round[k]);
    process.stderr.write(`round ${r + 1}/${ROUNDS} ${k}: ${round[k]} msg/s\n`);
  }
  ratios.push(round.pkg / round.ws);
}
console.log(
  `\n### WebSocket echo, Node 26 (1 KiB, ${SOCKETS} sockets, ${INFLIGHT} in flight each)\n`,
);
console.log("| server | messages/s (median) | min | max |");
console.log("| --- | --- | --- | --- |");
console.log(
  `| serve() + upgradeWebSocket() | ${median(results.pkg)} | ${Math.min(...results.pkg)} | ${
    Math.max(...results.pkg)
  } |`,
);
console.log(
  `| ws 8 on node:http | ${median(results.ws)} | ${Math.min(...results.ws)} | ${Math.max(...results.ws)} |`,
);
console.log(
  `\nratio serve()/ws: ${
    (median(results.pkg) / median(results.ws)).toFixed(2)
  } of medians; per-round median ${median(ratios).toFixed(2)} (${ratios.map((x) => x.toFixed(2)).join(" ")})`,
);

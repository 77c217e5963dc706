// WebSocket echo throughput: messages/s of the package's serve() with
// upgradeWebSocket() on an activated fd (systemd-socket-activate; serve()'s
// fast path in Deno and Bun, the package's own RFC 6455 framing in Node)
// against each runtime's own WebSocket server on a port: the `ws` library on
// node:http (Node 26), Deno.serve with Deno.upgradeWebSocket, Bun.serve's
// websocket handlers. Side by side in one run, interleaved (per runtime A B,
// then B A, ...). One client process (Node 26, the `ws` library's client):
// WS_SOCKETS sockets (64), each echoing 1 KiB binary messages with
// WS_INFLIGHT (16) in flight, for WS_SECONDS (3) a round after a 1 s warm-up,
// WS_ROUNDS (4) rounds; the server pinned to CPU 1, the client to CPU 0
// (taskset, where there is one). WS_RUNTIMES (default "node deno bun").
// Prints a markdown table. `node bench/ws.mjs` (about 2 minutes).
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import * as net from "node:net";
import * as path from "node:path";

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const NODE = process.env.WS_NODE ?? path.join(ROOT, "node_modules/node26/bin/node");
const ROUNDS = Number(process.env.WS_ROUNDS ?? 4);
const SOCKETS = Number(process.env.WS_SOCKETS ?? 64);
const INFLIGHT = Number(process.env.WS_INFLIGHT ?? 16);
const SECONDS = Number(process.env.WS_SECONDS ?? 3);
const RUNTIMES = (process.env.WS_RUNTIMES ?? "node deno bun").split(/\s+/).filter(Boolean);
const SSA = "/usr/bin/systemd-socket-activate";
const TASKSET = existsSync("/usr/bin/taskset") ? "/usr/bin/taskset" : undefined;
const pinned = (cpu, cmd) => (TASKSET ? [TASKSET, "-c", cpu, ...cmd] : cmd);

const SERVER = path.join(ROOT, "bench/ws-server.ts");
const RUN = {
  node: [NODE, "--import", "tsx", SERVER],
  deno: [path.join(ROOT, "node_modules/.bin/deno"), "run", "-A", SERVER],
  bun: [path.join(ROOT, "node_modules/.bin/bun"), "run", SERVER],
};
/** The runtime's own server, the reference, and its label. */
const OWN = {
  node: ["ws", "ws 8 on node:http (a port)"],
  deno: ["deno", "Deno.serve + Deno.upgradeWebSocket (a port)"],
  bun: ["bun", "Bun.serve websocket (a port)"],
};
const LABEL = { node: "Node 26", deno: "Deno", bun: "Bun" };

const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });

/** Starts one server (pkg: under systemd-socket-activate, exec'd by a first connection) and waits for "ready". */
function startServer(rt, kind, port) {
  const activated = kind === "pkg";
  const cmd = activated ? [SSA, "-l", `127.0.0.1:${port}`, ...RUN[rt]] : RUN[rt];
  const [bin, ...args] = pinned("1", cmd);
  const child = spawn(bin, args, {
    env: { ...process.env, PORT: activated ? "" : String(port), WS_SERVER: kind },
    stdio: ["ignore", "ignore", "pipe"],
    cwd: ROOT,
  });
  let err = "";
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${rt} ${kind} did not start: ${err}`));
    }, 20000);
    child.stderr.on("data", (d) => {
      err += d;
      // systemd-socket-activate listens: a connection execs the server.
      if (activated && /Listening on/.test(err) && !child.poked) {
        child.poked = true;
        const s = net.connect(
          port,
          "127.0.0.1",
          () => s.end("GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"),
        );
        s.on("error", () => {});
        s.resume();
      }
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
    const [bin, ...args] = pinned("0", [
      NODE,
      "--input-type=module",
      "-e",
      CLIENT,
      `ws://127.0.0.1:${port}/`,
      SOCKETS,
      INFLIGHT,
      String(SECONDS),
    ]);
    const c = spawn(bin, args, {
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

const kindsOf = (rt) => ["pkg", OWN[rt][0]];
const results = {};
const ratios = {};
for (const rt of RUNTIMES) {
  results[rt] = { pkg: [], own: [] };
  ratios[rt] = [];
}
for (let r = 0; r < ROUNDS; r++) {
  for (const rt of RUNTIMES) {
    const kinds = r % 2 === 0 ? kindsOf(rt) : [...kindsOf(rt)].reverse();
    const round = {};
    for (const k of kinds) {
      const port = await freePort();
      const server = await startServer(rt, k, port);
      try {
        round[k === "pkg" ? "pkg" : "own"] = await runClient(port);
      } finally {
        server.kill("SIGKILL");
        await new Promise((res) => server.exitCode !== null ? res() : server.once("exit", res));
      }
      process.stderr.write(
        `round ${r + 1}/${ROUNDS} ${rt} ${k}: ${round[k === "pkg" ? "pkg" : "own"]} msg/s\n`,
      );
    }
    results[rt].pkg.push(round.pkg);
    results[rt].own.push(round.own);
    ratios[rt].push(round.pkg / round.own);
  }
}
const k = (n) => n.toLocaleString("en-US");
console.log(
  `\n### WebSocket echo (1 KiB binary, ${SOCKETS} sockets, ${INFLIGHT} in flight each, ${ROUNDS} rounds)\n`,
);
console.log("| runtime | server | messages/s (median) | min | max | ratio (per-round median) |");
console.log("| --- | --- | --- | --- | --- | --- |");
for (const rt of RUNTIMES) {
  const { pkg, own } = results[rt];
  console.log(
    `| ${LABEL[rt]} | serve() + upgradeWebSocket() (activated fd) | ${k(median(pkg))} | ${
      k(Math.min(...pkg))
    } | ${k(Math.max(...pkg))} | ${median(ratios[rt]).toFixed(2)} (${
      ratios[rt].map((x) => x.toFixed(2)).join(" ")
    }) |`,
  );
  console.log(
    `| ${LABEL[rt]} | ${OWN[rt][1]} | ${k(median(own))} | ${k(Math.min(...own))} | ${
      k(Math.max(...own))
    } | 1 |`,
  );
}

// notify() per message: the time of one `await notify("STATUS=...")` to a
// unix datagram socket, in Node 26 (node:ffi), Deno and Bun (their FFI), and
// Node 22 (systemd-notify, for scale), side by side: each round runs every
// runtime once (bench/notify-client.mjs, NOTIFY_N messages after a warm-up),
// NOTIFY_ROUNDS rounds (default 7), the order rotating each round. The
// receiver is a python3 AF_UNIX SOCK_DGRAM socket on an abstract name that
// reads and drops. Prints a markdown table: the median per message and the
// median of the per-round ratios to Node 26. `node bench/notify.mjs` (about
// 40 s).
import { spawn, spawnSync } from "node:child_process";
import * as path from "node:path";

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const ROUNDS = Number(process.env.NOTIFY_ROUNDS ?? 7);
const N = Number(process.env.NOTIFY_N ?? 2000);
const bin = (p) => path.join(ROOT, p);
const CLIENT = bin("bench/notify-client.mjs");
const RUNTIMES = {
  "node 26": [bin("node_modules/node26/bin/node"), CLIENT, bin("dist/node.js"), String(N)],
  deno: [bin("node_modules/.bin/deno"), "run", "-A", CLIENT, bin("mod.ts"), String(N)],
  bun: [bin("node_modules/.bin/bun"), CLIENT, bin("mod.ts"), String(N)],
  // systemd-notify per message: a few, for scale.
  "node 22": [bin("node_modules/node22/bin/node"), CLIENT, bin("dist/node.js"), "20"],
};

const name = `@sa-bench-notify-${process.pid}`;
const receiver = spawn("python3", [
  "-c",
  `import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
s.bind("\\0" + sys.argv[1][1:]); print("ready", flush=True)
while True: s.recv(4096)`,
  name,
], { stdio: ["ignore", "pipe", "inherit"] });
await new Promise((resolve) => receiver.stdout.once("data", resolve));

function once(argv) {
  const r = spawnSync(argv[0], argv.slice(1), {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, NOTIFY_SOCKET: name, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    timeout: 120_000,
  });
  const ms = Number(r.stdout.trim());
  if (r.status !== 0 || !Number.isFinite(ms)) {
    throw new Error(`${argv.join(" ")}: exit ${r.status}\n${r.stdout}\n${r.stderr}`);
  }
  return ms;
}

const names = Object.keys(RUNTIMES);
const got = Object.fromEntries(names.map((n) => [n, []]));
try {
  for (let round = 0; round < ROUNDS; round++) {
    const order = names.map((_, i) => names[(i + round) % names.length]);
    for (const n of order) got[n].push(once(RUNTIMES[n]));
    process.stderr.write(".");
  }
} finally {
  receiver.kill("SIGKILL");
}
process.stderr.write("\n");
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const us = (ms) => ms >= 1 ? `${ms.toFixed(1)} ms` : `${(ms * 1000).toFixed(1)} µs`;
console.log(`## notify() per message (${N} messages a run, ${ROUNDS} rounds, median)\n`);
console.log("| runtime | per message | Node 26 / this (median of per-round ratios) |");
console.log("| ------- | ----------- | ------------------------------------------- |");
for (const n of names) {
  const ratio = median(got[n].map((ms, i) => got["node 26"][i] / ms));
  console.log(`| ${n} | ${us(median(got[n]))} | ${ratio >= 0.1 ? ratio.toFixed(2) : ratio.toPrecision(2)} |`);
}

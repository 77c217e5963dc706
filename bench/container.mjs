// The first connection's cost of a socket-activated container: `node bench/container.mjs` (a few
// minutes; needs podman, run as root). For each runtime (Node 26, Deno, Bun), the package's echo
// server started by systemd-socket-activate on the first connection:
//   (a) bare: the runtime exec'd by systemd-socket-activate;
//   (b) container: `podman run --rm --network=none` of a root file system that holds only the
//       runtime's binary and its libraries (as test/_podman.ts builds it), through test/podrun.sh;
//   (c) full: the same with a full root file system, the host's own behind an overlay (--rootfs /:O,
//       as test/_podman.ts's fullRootfs()), the runtime at its path on the host.
// Measured: connect() -> the first byte of the greeting, cold (the connection starts it), a fresh
// activator and port per sample, variants interleaved (a b a b ...) because the machine is noisy;
// medians, the spread, and the ratio (b)/(a). Every greeting and one echo are checked; every wait is
// bounded, every process stopped by PID. Knobs: BENCH_SAMPLES=7, BENCH_RUNTIMES="node deno bun".
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 7);
const RUNTIMES = (process.env.BENCH_RUNTIMES ?? "node deno bun").split(/\s+/).filter(Boolean);
const HOST = "127.0.0.1";
const GREETING = "OHAI! systemd socket: true\n";
const RT = "/runtime";
const VARIANTS = ["bare", "container", "full"];
const LOAD_AT_START = os.loadavg()[0];

const binary = {
  node: path.join(ROOT, "node_modules/node26/bin/node"),
  deno: path.join(ROOT, "node_modules/.bin/deno"),
  bun: path.join(ROOT, "node_modules/.bin/bun"),
};
const args = {
  node: [path.join(ROOT, "dist/cli.cjs"), "--quiet"],
  deno: ["run", "-A", path.join(ROOT, "mod.ts"), "--quiet"],
  bun: ["run", path.join(ROOT, "mod.ts"), "--quiet"],
};

/** podman options for a root file system of the binary and its libraries, read-only, and the checkout. */
function rootfsOptions(bin) {
  const real = fs.realpathSync(bin);
  const libs = execFileSync("ldd", [real], { encoding: "utf8" }).split("\n")
    .map((l) => /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(l)?.[1]).filter(Boolean);
  const mounts = new Map([[real, RT], ...libs.map((l) => [l, l]), [ROOT, ROOT]]);
  const nm = path.join(ROOT, "node_modules"), nmReal = fs.realpathSync(nm);
  if (nmReal !== nm) mounts.set(nmReal, nmReal);
  return [
    ...[...mounts].flatMap(([from, to]) => ["-v", `${from}:${to}:ro`]),
    ...["--tmpfs", "/tmp", "-e", "DENO_DIR=/tmp/deno", "-e", "HOME=/tmp"],
  ];
}

const rootfs = fs.mkdtempSync(path.join(os.tmpdir(), "bench-rootfs-"));
const checkout = () => {
  const nm = path.join(ROOT, "node_modules"), nmReal = fs.realpathSync(nm);
  return ["-v", `${ROOT}:${ROOT}:ro`, ...(nmReal !== nm ? ["-v", `${nmReal}:${nmReal}:ro`] : [])];
};
const command = (variant, rt) =>
  variant === "bare" ? [binary[rt], ...args[rt]] : variant === "full"
    ? [
      "/bin/bash",
      path.join(ROOT, "test/podrun.sh"),
      "--network=none",
      ...checkout(),
      "--rootfs",
      "/:O",
      fs.realpathSync(binary[rt]),
      ...args[rt],
    ]
    : [
      "/bin/bash",
      path.join(ROOT, "test/podrun.sh"),
      "--network=none",
      ...rootfsOptions(binary[rt]),
      "--rootfs",
      rootfs,
      RT,
      ...args[rt],
    ];

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer().once("error", reject);
    s.listen({ port: 0, host: HOST, exclusive: true }, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function withTimeout(p, ms, what) {
  let t;
  return Promise.race([
    p,
    new Promise((_, rej) => (t = setTimeout(() => rej(new Error(`${what}: timed out`)), ms))),
  ])
    .finally(() => clearTimeout(t));
}

/** One cold start; returns ms from connect() to the greeting's first byte. */
async function sample(variant, rt) {
  const port = await freePort();
  const p = spawn("/usr/bin/systemd-socket-activate", ["-l", `${HOST}:${port}`, ...command(variant, rt)], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let err = "";
  p.stderr.on("data", (d) => (err += d));
  const exited = new Promise((r) => p.once("exit", r));
  try {
    await withTimeout(
      (async () => {
        while (!err.includes("Listening on")) await new Promise((r) => setTimeout(r, 5));
      })(),
      10000,
      `${rt} ${variant}: the activator`,
    );
    const sock = net.connect({ port, host: HOST });
    const t0 = performance.now();
    let first, buf = "";
    const line = await withTimeout(
      new Promise((res, rej) => {
        sock.on("data", (d) => {
          first ??= performance.now();
          buf += d;
          if (buf.includes("\n")) res(buf);
        });
        sock.on("error", rej);
        sock.on("close", () => rej(new Error(`closed after ${JSON.stringify(buf)}`)));
      }),
      30000,
      `${rt} ${variant}: the greeting`,
    ).catch((e) => {
      throw new Error(`${e.message}\n${err}`);
    });
    if (line !== GREETING) throw new Error(`${rt} ${variant}: greeting ${JSON.stringify(line)}`);
    sock.removeAllListeners("data");
    const echoed = await withTimeout(
      new Promise((res) => {
        let b = "";
        sock.on("data", (d) => (b += d, b.length >= 5 && res(b)));
        sock.write("ping\n");
      }),
      5000,
      `${rt} ${variant}: the echo`,
    );
    if (echoed !== "PING\n") throw new Error(`${rt} ${variant}: echo ${JSON.stringify(echoed)}`);
    sock.destroy();
    return first - t0;
  } finally {
    p.kill("SIGTERM");
    const t = setTimeout(() => p.kill("SIGKILL"), 10000);
    await exited;
    clearTimeout(t);
  }
}

const q = (xs, f) => {
  const s = [...xs].sort((a, b) => a - b);
  const i = (s.length - 1) * f, lo = Math.floor(i), hi = Math.ceil(i);
  return s[lo] + (s[hi] - s[lo]) * (i - lo);
};
const f0 = (x) => x.toFixed(0);

const results = {};
try {
  for (const rt of RUNTIMES) {
    results[rt] = { bare: [], container: [], full: [] };
    // One unmeasured warm-up each: the page cache, podman's storage.
    for (const v of VARIANTS) await sample(v, rt);
    for (let i = 0; i < SAMPLES; i++) {
      // Rotated, so that no variant always follows the same one.
      for (const v of VARIANTS.map((_, j) => VARIANTS[(i + j) % VARIANTS.length])) {
        results[rt][v].push(await sample(v, rt));
      }
      process.stderr.write(".");
    }
    process.stderr.write(` ${rt}\n`);
  }
} finally {
  fs.rmSync(rootfs, { recursive: true, force: true });
}

const out = [
  `## The first connection of a socket-activated container: connect() → first byte of the greeting (${SAMPLES} cold starts each, median)`,
  "",
  `${new Date().toISOString().slice(0, 10)}, podman ${
    execFileSync("podman", ["--version"], { encoding: "utf8" }).trim().split(" ").pop()
  }, ${os.cpus().length} cores, load average ${LOAD_AT_START.toFixed(1)} at the start, ${
    os.loadavg()[0].toFixed(1)
  } at the end`,
  "",
  "| runtime | bare process (p25-p75) | container (p25-p75) | container − bare | ratio | full root fs (p25-p75) |",
  "| ------- | ---------------------- | ------------------- | ---------------- | ----- | ---------------------- |",
];
const cell = (xs) => `${f0(q(xs, 0.5))} ms (${f0(q(xs, 0.25))}-${f0(q(xs, 0.75))})`;
for (const rt of RUNTIMES) {
  const { bare: b, container: c, full } = results[rt];
  const mb = q(b, 0.5), mc = q(c, 0.5);
  out.push(
    `| ${rt} | ${cell(b)} | ${cell(c)} | ${f0(mc - mb)} ms | ${(mc / mb).toFixed(1)} | ${cell(full)} |`,
  );
}
console.log(out.join("\n"));

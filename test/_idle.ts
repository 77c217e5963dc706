// What an idle connection costs a server: its RSS growth per connection,
// for test/idle.test.ts (a modest count) and bench/idle.ts (10,000).
// The clients live in the calling process, the server in its own: each
// connection has one exchange (the echo's greeting and one line, or one
// keep-alive HTTP request), then stays open and quiet. The cost is the slope
// between two counts, (RSS at n - RSS at warm) / (n - warm), so that what a
// server loads on its first connections (code, JIT, lazy modules) is not
// counted.
import * as fs from "node:fs";
import * as net from "node:net";
import { freePort, type Run, SSA, start } from "./_util.ts";

const HOST = "127.0.0.1";

/** A server to measure: a command, run under systemd-socket-activate unless it takes a port. */
export interface IdleServer {
  /** What it speaks: "echo" (greeting, then upper-cased echo) or "http" (keep-alive GET). */
  kind: "echo" | "http";
  /** The command; with `port`, the port is appended and it listens itself. */
  cmd: string[];
  port?: boolean;
  env?: Record<string, string>;
  /**
   * "http" only: every connection sends another GET when it has been quiet
   * this long (ms), so that a server's keep-alive timeout (node:http's 5 s,
   * Bun.serve's 10 s) does not close it while the others open. Give the
   * package and its reference the same.
   */
  ping?: number;
  /**
   * Whether the command has test/fixtures/gc_on_signal.mjs preloaded: each
   * RSS is then read after a full garbage collection (SIGUSR2).
   */
  gc?: boolean;
}

export interface IdleCost {
  /** RSS growth per connection, bytes. */
  perConn: number;
  /** RSS (bytes) with `warm` and with `n` connections open. */
  rssWarm: number;
  rssFull: number;
  /**
   * With `gc`: the growth per connection of the live bytes the server reports
   * after the collection (heap in use and external memory).
   */
  heapPerConn?: number;
  /** Milliseconds to open and exchange on the connections from `warm` to `n`. */
  acceptMs: number;
}

/** VmRSS of `pid` in bytes. */
export function rss(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

const ECHO_LINE = new TextEncoder().encode("hi\n");
const HTTP_GET = new TextEncoder().encode(`GET / HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);

/** One connection and its exchange; resolves with the socket, open and idle. */
function openOne(port: number, kind: "echo" | "http", ms: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, HOST);
    let got = "";
    let stage = 0;
    const timer = setTimeout(
      () => fail(new Error(`no ${kind} exchange within ${ms} ms (got ${JSON.stringify(got)})`)),
      ms,
    );
    const fail = (e: Error) => {
      clearTimeout(timer);
      s.destroy();
      reject(e);
    };
    s.on("error", fail);
    s.on(
      "close",
      () => fail(new Error(`closed by the server during the exchange (got ${JSON.stringify(got)})`)),
    );
    if (kind === "http") s.once("connect", () => s.write(HTTP_GET));
    s.on("data", (d: Uint8Array) => {
      got += new TextDecoder().decode(d);
      if (kind === "echo") {
        if (stage === 0 && got.includes("\n")) {
          stage = 1;
          got = "";
          s.write(ECHO_LINE);
        }
        if (stage === 1 && got === "HI\n") done();
      } else {
        const head = got.indexOf("\r\n\r\n");
        if (head < 0) return;
        const len = /\r\ncontent-length: *(\d+)/i.exec(got.slice(0, head));
        if (!len) return fail(new Error(`no content-length in ${JSON.stringify(got)}`));
        if (got.length - head - 4 >= Number(len[1])) done();
      }
    });
    const done = () => {
      clearTimeout(timer);
      s.removeAllListeners("data");
      s.removeAllListeners("close");
      s.removeAllListeners("error");
      s.on("error", () => {});
      s.on("close", () => closedEarly++);
      if (kind === "http") lastSent.set(s, performance.now());
      resolve(s);
    };
  });
}

let closedEarly = 0;
/** When each open http connection last sent a request (for IdleServer.ping). */
const lastSent = new Map<net.Socket, number>();

/**
 * Sends a GET on every connection of `socks` quiet for `ms`, every `ms / 8`;
 * the answers are read and dropped (the sockets flow with no 'data' listener).
 * Returns the stop.
 */
function pinging(socks: net.Socket[], ms: number): () => void {
  const timer = setInterval(() => {
    const now = performance.now();
    for (const s of socks) {
      const t = lastSent.get(s);
      if (t === undefined || now - t < ms) continue;
      lastSent.set(s, now);
      s.write(HTTP_GET);
    }
  }, ms / 8);
  return () => clearInterval(timer);
}

/** Opens `count` connections, `parallel` at a time. */
async function openMany(
  port: number,
  kind: "echo" | "http",
  count: number,
  into: net.Socket[],
): Promise<void> {
  const parallel = 50;
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      into.push(await openOne(port, kind, 20_000));
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, worker));
}

/**
 * RSS once it holds still: read every `step` ms until two readings `step`
 * apart differ by less than 1% of the growth so far, at most `ms`; at least
 * `min` ms after the last connection.
 */
async function settled(pid: number, base: number, min: number, ms = 3000, step = 100): Promise<number> {
  await new Promise((r) => setTimeout(r, min));
  const deadline = Date.now() + ms;
  let last = rss(pid);
  for (;;) {
    await new Promise((r) => setTimeout(r, step));
    const now = rss(pid);
    if (Math.abs(now - last) < Math.max(0.01 * Math.abs(now - base), 64 * 1024) || Date.now() > deadline) {
      return now;
    }
    last = now;
  }
}

async function startServer(server: IdleServer): Promise<{ run: Run; port: number; pid: () => number }> {
  const port = await freePort();
  const env = { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1", ...server.env };
  const run = server.port ? start([...server.cmd, String(port)], env) : start([
    SSA,
    "-l",
    `${HOST}:${port}`,
    ...Object.entries(env).flatMap(([k, v]) => ["-E", `${k}=${v}`]),
    ...server.cmd,
  ], env);
  return { run, port, pid: () => run.child.pid! };
}

/**
 * The RSS growth per idle connection of each server, all measured at once
 * (their connections opened in turns: the same moment of a loaded machine
 * for each), between `warm` and `n` connections. `settle` ms are waited
 * after the last connection before the RSS is read (then until it holds
 * still). The servers are stopped after.
 */
export async function idleCosts(
  servers: IdleServer[],
  n: number,
  warm: number,
  settle = 1000,
): Promise<IdleCost[]> {
  const runs: { run: Run; port: number; pid: () => number }[] = [];
  const socks: net.Socket[] = [];
  closedEarly = 0;
  lastSent.clear();
  const pings = servers.map((s) => s.ping).filter((p): p is number => p !== undefined);
  const stopPinging = pings.length > 0 ? pinging(socks, Math.min(...pings)) : () => {};
  try {
    for (const server of servers) runs.push(await startServer(server));
    // The first connection starts the program (or waits for it to listen).
    for (const [i, { run, port }] of runs.entries()) {
      const deadline = Date.now() + 20_000;
      for (;;) {
        try {
          socks.push(await openOne(port, servers[i].kind, 20_000));
          break;
        } catch (e) {
          if (run.child.exitCode !== null || Date.now() > deadline) {
            throw new Error(`${servers[i].cmd.join(" ")}: ${(e as Error).message}; stderr:\n${run.stderr()}`);
          }
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    }
    const ms = runs.map(() => 0);
    const batch = 100;
    const open = async (from: number, to: number) => {
      for (let k = from; k < to; k += batch) {
        for (const [i, { port }] of runs.entries()) {
          const t0 = performance.now();
          await openMany(port, servers[i].kind, Math.min(batch, to - k), socks);
          ms[i] += performance.now() - t0;
        }
      }
    };
    await open(1, warm);
    const rssWarm = await settledAll(runs, servers, settle);
    ms.fill(0);
    await open(warm, n);
    const rssFull = await settledAll(runs, servers, settle, rssWarm);
    if (closedEarly > 0) {
      throw new Error(
        `the servers closed ${closedEarly} of ${n * servers.length} idle connections while measuring`,
      );
    }
    return runs.map(({ run }, i) => ({
      perConn: (rssFull[i] - rssWarm[i]) / (n - warm),
      heapPerConn: servers[i].gc ? (heaps(run).at(-1)! - heaps(run).at(-2)!) / (n - warm) : undefined,
      rssWarm: rssWarm[i],
      rssFull: rssFull[i],
      acceptMs: ms[i],
    }));
  } finally {
    stopPinging();
    lastSent.clear();
    for (const s of socks) s.destroy();
    for (const { run } of runs) {
      run.signal("SIGKILL");
      await run.exited(10_000).catch(() => {});
    }
  }
}

/** settled() for several servers at once, each after a garbage collection where it has gc_on_signal.mjs. */
async function settledAll(
  runs: { run: Run; pid: () => number }[],
  servers: IdleServer[],
  min: number,
  base?: number[],
): Promise<number[]> {
  await new Promise((r) => setTimeout(r, min));
  await Promise.all(runs.map(({ run }, i) => servers[i].gc ? collected(run) : undefined));
  return Promise.all(runs.map(({ pid }, i) => settled(pid(), base?.[i] ?? rss(pid()), 0)));
}

/** The live bytes of each `idle-gc N heap BYTES` line the server has written. */
const heaps = (run: Run) => [...run.stderr().matchAll(/^idle-gc \d+ heap (\d+)$/gm)].map((m) => Number(m[1]));

/** Asks a server with gc_on_signal.mjs for a full garbage collection and waits for it (at most 10 s). */
async function collected(run: Run): Promise<void> {
  const before = heaps(run).length;
  run.signal("SIGUSR2");
  const deadline = Date.now() + 10_000;
  while (heaps(run).length === before) {
    if (Date.now() > deadline) throw new Error(`no garbage collection within 10 s; stderr:\n${run.stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** One server alone: idleCosts() of one. */
export async function idleCost(
  server: IdleServer,
  n: number,
  warm: number,
  settle = 1000,
): Promise<IdleCost> {
  return (await idleCosts([server], n, warm, settle))[0];
}

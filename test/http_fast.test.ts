// The fast HTTP paths through the real systemd-socket-activate and real
// clients (curl, fetch, raw sockets): Deno's native server on the connections
// of a Deno listener that took the fd over, or without FFI on node:net's
// taken streams (runtimes/deno/http_fast.ts), Bun.serve with the fd put
// under its listener (runtimes/bun/http_fast.ts). Each runtime runs its own
// path; Node has none and checks that both answer null there.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import {
  fixtureCommand,
  freePort,
  refused,
  type Run,
  RUNTIME,
  selfSigned,
  SSA,
  start,
  tempDir,
} from "./_util.ts";

const FAST = RUNTIME !== "node";
// node:test and bun test report a reason given as a string.
const NO_FAST = FAST ? false : "Node has no fast path: serve() is node:http already";
const fixture = () => fixtureCommand("http_fast.ts");

function curl(args: string[], ms = 20000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile("curl", ["-sS", "--max-time", String(ms / 1000), ...args], {
      maxBuffer: 64 << 20,
      encoding: "latin1",
    }, (e, stdout, stderr) => {
      resolve({ code: e ? (typeof e.code === "number" ? e.code : 1) : 0, stdout, stderr });
    });
  });
}

/** curl that rejects unless it exited 0: a first request to retry. */
async function curlOk(args: string[]): Promise<string> {
  const c = await curl(args, 5000);
  if (c.code !== 0) throw new Error(`curl exited ${c.code}: ${c.stderr}`);
  return c.stdout;
}

/** Starts the fixture under systemd-socket-activate and waits until it says how it serves. */
async function serveFixture(
  listen: string,
  first: () => Promise<unknown>,
  env: Record<string, string> = {},
): Promise<Run> {
  const passed = Object.keys(env).flatMap((k) => ["-E", k]);
  const run = start([SSA, "-l", listen, ...passed, ...fixture()], env);
  const deadline = Date.now() + 15000;
  // The first request execs the runtime; it is refused until
  // systemd-socket-activate listens.
  for (;;) {
    try {
      await first();
      break;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`the fixture did not answer (${e}):\n${run.stderr()}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  if (!/^(fast|fallback|serve)/m.test(run.stderr())) {
    throw new Error(`the fixture did not say how it serves:\n${run.stderr()}`);
  }
  return run;
}

async function stop(run: Run): Promise<number | string> {
  run.signal("SIGTERM");
  return await run.exited();
}

const getJson = async (url: string) => (await (await fetch(url)).json()) as { remoteAddr: unknown };

test("http fast path: serveFast() answers null outside its runtime, touching nothing", async () => {
  const handler = () => new Response("x");
  const deno = await import("../runtimes/deno/http_fast.ts");
  const bun = await import("../runtimes/bun/http_fast.ts");
  // fd 987 does not exist: a path that touched it would fail another way.
  if (RUNTIME !== "deno") {
    assert.equal(await deno.serveFast(987, handler, { transport: "tcp" }), null);
    assert.match(deno.unavailable()!, /Deno is missing/);
  }
  if (RUNTIME !== "bun") {
    assert.equal(await bun.serveFast(987, handler, { transport: "tcp" }), null);
    assert.match(bun.unavailable()!, /Bun\.serve is missing/);
  }
  if (RUNTIME === "deno") {
    assert.equal(deno.unavailable(), undefined, "Deno's internals are present");
    // TLS only through a takeover (here none): node:net's way has no TLS.
    const tls = { cert: "", key: "" };
    assert.equal(await deno.serveFast(987, handler, { transport: "tcp", tls }), null);
  }
  if (RUNTIME === "bun") {
    assert.equal(bun.unavailable(), undefined, "Bun's FFI is present");
    // Not a listening socket: fd 987 is not open.
    assert.equal(await bun.serveFast(987, handler, { transport: "tcp" }), null);
  }
});

// Deno's two ways in: a Deno listener that took the fd over (with FFI, the
// default) and node:net's taken streams (FAST_DENO_VIA=node-net).
const vias: [string, Record<string, string>][] = RUNTIME === "deno"
  ? [["", {}], [" (Deno through node:net)", { FAST_DENO_VIA: "node-net" }]]
  : [["", {}]];

for (const [via, viaEnv] of vias) {
  test(
    `http fast path${via}: 1000 keep-alive requests at 50 concurrent, all correct`,
    { skip: NO_FAST },
    () => keepAlive(viaEnv),
  );
}

async function keepAlive(viaEnv: Record<string, string>): Promise<void> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const run = await serveFixture(`127.0.0.1:${port}`, () => getJson(`${base}/`), viaEnv);
  await run.stderrMatch(/^fast \{"transport":"tcp","hostname":"127\.0\.0\.1","port":\d+\}/m);
  // curl over one connection: the server's remoteAddr is curl's own port,
  // the same for every request (keep-alive).
  const c = await curl(["-w", " %{local_port}\\n", `${base}/`, `${base}/`, `${base}/`]);
  assert.equal(c.code, 0, c.stderr);
  const lines = c.stdout.trim().split("\n");
  assert.equal(lines.length, 3);
  const ports = new Set(lines.map((l) => {
    const [json, local] = [l.slice(0, l.lastIndexOf(" ")), l.slice(l.lastIndexOf(" ") + 1)];
    const body = JSON.parse(json);
    assert.deepEqual(body.remoteAddr, { transport: "tcp", hostname: "127.0.0.1", port: Number(local) });
    return local;
  }));
  assert.equal(ports.size, 1, "curl reused its connection");

  let errors = 0, done = 0;
  const remotePorts = new Set<number>();
  await Promise.all(Array.from({ length: 50 }, async (_, w) => {
    for (let i = 0; i < 20; i++) {
      try {
        const r = await fetch(`${base}/echo`, { method: "POST", body: `w${w} i${i}` });
        const text = await r.text();
        if (r.status !== 200 || text !== `w${w} i${i}`) errors++;
        else done++;
        const j = await getJson(`${base}/`);
        remotePorts.add((j.remoteAddr as { port: number }).port);
      } catch {
        errors++;
      }
    }
  }));
  assert.equal(errors, 0);
  assert.equal(done, 1000);
  assert.ok(remotePorts.size <= 200, `${remotePorts.size} connections for 1000 requests: no keep-alive`);
  assert.equal(await stop(run), 0, run.stderr());
}

test("http fast path: a 1 MiB POST body is echoed intact (curl)", { skip: NO_FAST }, async () => {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const run = await serveFixture(`127.0.0.1:${port}`, () => fetch(`${base}/`));
  const dir = tempDir();
  const file = path.join(dir, "body");
  const body = crypto.randomBytes(1 << 20);
  fs.writeFileSync(file, body);
  const out = path.join(dir, "out");
  const c = await curl(["-o", out, "-w", "%{http_code}", "--data-binary", `@${file}`, `${base}/echo`]);
  assert.equal(c.stdout, "200", c.stderr);
  assert.ok(fs.readFileSync(out).equals(body), "the echoed body differs");
  fs.rmSync(dir, { recursive: true });
  assert.equal(await stop(run), 0, run.stderr());
});

test("http fast path: a streamed response arrives chunk by chunk", { skip: NO_FAST }, async () => {
  const port = await freePort();
  const run = await serveFixture(`127.0.0.1:${port}`, () => fetch(`http://127.0.0.1:${port}/`));
  const s = net.connect(port, "127.0.0.1");
  const arrivals: [number, string][] = [];
  const t0 = Date.now();
  const all = await new Promise<string>((resolve, reject) => {
    let text = "";
    s.on("data", (d) => {
      arrivals.push([Date.now() - t0, d.toString("latin1")]);
      text += d.toString("latin1");
    });
    s.on("error", reject);
    s.on("close", () => resolve(text));
    s.write(`GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  });
  assert.match(all, /^HTTP\/1\.1 200/);
  assert.match(all, /transfer-encoding: chunked/i);
  for (let i = 0; i < 5; i++) assert.ok(all.includes(`chunk ${i}\n`), `chunk ${i} missing in ${all}`);
  const first = arrivals.find(([, d]) => d.includes("chunk 0"))![0];
  const last = arrivals.find(([, d]) => d.includes("chunk 4"))![0];
  assert.ok(last - first >= 400, `chunks 0 and 4 came ${last - first} ms apart: the body was buffered`);
  assert.equal(await stop(run), 0, run.stderr());
});

test(
  "http fast path: close lets a request in flight finish, then the process exits",
  { skip: NO_FAST },
  async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const run = await serveFixture(`127.0.0.1:${port}`, () => fetch(`${base}/`));
    const slow = curl(["-w", " %{http_code}", `${base}/slow?ms=800`]);
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    run.signal("SIGTERM");
    const c = await slow;
    assert.equal(c.stdout, "slow done 200", c.stderr);
    assert.equal(await run.exited(), 0, run.stderr());
    assert.match(run.stderr(), /^closed$/m);
    assert.ok(Date.now() - t0 < 4000, "the close waited for its time-out, not for the request");
    assert.ok(await refused(port), "still accepting after close");
  },
);

test(
  "http fast path: a handler that throws gets onError's answer; completed settles",
  { skip: NO_FAST },
  async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const run = await serveFixture(`127.0.0.1:${port}`, () => fetch(`${base}/`));
    const r = await fetch(`${base}/throw`);
    assert.equal(r.status, 500);
    assert.equal(await r.text(), "onError: thrown on purpose");
    assert.equal(await (await fetch(`${base}/completed`)).text(), "watch completed");
    await run.stderrMatch(/completed settled/);
    assert.equal(await stop(run), 0, run.stderr());
  },
);

test("http fast path: IPv6", { skip: NO_FAST }, async () => {
  const port = await freePort("::1");
  const base = `http://[::1]:${port}`;
  const run = await serveFixture(`[::1]:${port}`, () => fetch(`${base}/`));
  await run.stderrMatch(/^fast \{"transport":"tcp","hostname":"::1","port":\d+\}/m);
  const j = await getJson(`${base}/`);
  assert.equal((j.remoteAddr as { hostname: string }).hostname, "::1");
  assert.equal(await stop(run), 0, run.stderr());
});

for (const [via, viaEnv] of vias) {
  // node:net's PipeWrap in Deno has no takeStream: that way answers null.
  const fast = viaEnv.FAST_DENO_VIA === undefined;
  test(
    `http fast path${via}: a unix socket (${fast ? "fast" : "null, served by the fallback"})`,
    { skip: NO_FAST },
    async () => {
      const dir = tempDir();
      const sock = path.join(dir, "http.sock");
      const run = await serveFixture(sock, () => curlOk(["--unix-socket", sock, "http://x/"]), {
        FAST_TRANSPORT: "unix",
        ...viaEnv,
      });
      assert.match(run.stderr(), fast ? /^fast \{"transport":"unix","path":".*http\.sock"\}/m : /^fallback/m);
      const c = await curl(["--unix-socket", sock, "http://x/", "http://x/"]);
      assert.equal(c.code, 0, c.stderr);
      assert.match(c.stdout, /"method":"GET"/);
      // (The fixture's own fallback bridge reports no unix peer.)
      if (fast) assert.match(c.stdout, /"remoteAddr":\{"transport":"unix","path":""\}/);
      assert.equal(await stop(run), 0, run.stderr());
      fs.rmSync(dir, { recursive: true });
    },
  );
}

// HTTPS: Bun's fast path and Deno's takeover (a Deno.listenTls listener, with
// ALPN h2 and http/1.1 as Deno.serve offers) serve it; Deno through node:net
// answers null and the fixture's node:https fallback serves.
for (const [via, viaEnv] of vias) {
  const fast = viaEnv.FAST_DENO_VIA === undefined;
  test(
    `http fast path${via}: HTTPS (${fast ? "fast" : "null, served by the fallback"})`,
    { skip: NO_FAST },
    async () => {
      const { cert, key, dir } = await selfSigned();
      const port = await freePort();
      const run = await serveFixture(
        `127.0.0.1:${port}`,
        () => curlOk(["--cacert", cert, `https://127.0.0.1:${port}/`]),
        { FAST_CERT: cert, FAST_KEY: key, ...viaEnv },
      );
      await run.stderrMatch(fast ? /^fast/m : /^fallback/m);
      // Verified against the certificate, not -k; HTTP/1.1 and, where ALPN offers it, HTTP/2.
      const url = `https://127.0.0.1:${port}/`;
      const c = await curl(["--cacert", cert, "--http1.1", "-w", " %{http_code} %{http_version}", url]);
      assert.equal(c.code, 0, c.stderr);
      assert.match(c.stdout, /"method":"GET"\} 200 1\.1$/);
      if (fast && RUNTIME === "deno") {
        const h2 = await curl(["--cacert", cert, "--http2", "-w", " %{http_code} %{http_version}", url]);
        assert.equal(h2.code, 0, h2.stderr);
        assert.match(h2.stdout, /"method":"GET"\} 200 2$/);
        const body = new Uint8Array(1 << 20).map((_, i) => (i * 13) & 0xff);
        const bodyFile = path.join(dir, "body");
        fs.writeFileSync(bodyFile, body);
        const post = await curl([
          "--cacert",
          cert,
          "-s",
          "-o",
          path.join(dir, "out"),
          "--data-binary",
          `@${bodyFile}`,
          `${url}echo`,
        ]);
        assert.equal(post.code, 0, post.stderr);
        assert.deepEqual(new Uint8Array(fs.readFileSync(path.join(dir, "out"))), body);
      }
      const plain = await curl(["-w", "%{http_code}", `http://127.0.0.1:${port}/`], 5000);
      assert.notEqual(plain.stdout.slice(-3), "200", "plain HTTP on the HTTPS socket got a 200");
      assert.equal(await stop(run), 0, run.stderr());
      fs.rmSync(dir, { recursive: true });
    },
  );
}

test(
  "http fast path: an internal missing -> null, the fd intact for the fallback",
  { skip: NO_FAST },
  async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const run = await serveFixture(`127.0.0.1:${port}`, () => fetch(`${base}/`), { FAST_HIDE: "1" });
    await run.stderrMatch(/^fallback$/m);
    const c = await curl([
      "-w",
      " %{http_code}",
      `${base}/`,
      "--next",
      "-w",
      " %{http_code}",
      "--data-binary",
      "posted",
      `${base}/echo`,
    ]);
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stdout, /"method":"GET"\} 200posted 200$/);
    run.signal("SIGKILL");
    await run.exited();
  },
);

/** One GET over curl with the response headers: [head, body]. */
async function headAndBody(url: string): Promise<[string, string]> {
  const c = await curl(["-i", url]);
  assert.equal(c.code, 0, c.stderr);
  const at = c.stdout.indexOf("\r\n\r\n");
  return [c.stdout.slice(0, at), c.stdout.slice(at + 4)];
}

// node:http announces its keep-alive time-out in a header on every
// keep-alive response; hyper (Deno.serve) and uWebSockets (Bun.serve) send
// none: the header tells which server answered.
const NODE_HTTP = /^keep-alive: timeout=/im;

test(
  "serve() answers through the fast path, and through node:http with SOCKET_ACTIVATE_HTTP_FAST=0 or an internal missing",
  { skip: NO_FAST },
  async () => {
    for (const how of ["fast", "switched off", "internal missing"]) {
      const fast = how === "fast";
      const port = await freePort();
      const base = `http://127.0.0.1:${port}`;
      const env: Record<string, string> = { FAST_VIA_SERVE: "1" };
      if (how === "switched off") env.SOCKET_ACTIVATE_HTTP_FAST = "0";
      if (how === "internal missing") env.FAST_HIDE = "1";
      const run = await serveFixture(`127.0.0.1:${port}`, () => curlOk([`${base}/`]), env);
      await run.stderrMatch(/^serve \{"transport":"tcp","hostname":"127\.0\.0\.1","port":\d+\}/m);
      const [head, body] = await headAndBody(`${base}/`);
      assert.match(head, /^HTTP\/1\.1 200/);
      if (fast) assert.doesNotMatch(head, NODE_HTTP, "the fast path was not taken");
      else assert.match(head, NODE_HTTP, `${how}: not served by node:http`);
      assert.equal(JSON.parse(body).remoteAddr.hostname, "127.0.0.1");
      const r = await fetch(`${base}/throw`);
      assert.equal(r.status, 500);
      await r.text();
      await run.stderrMatch(/socket-activate: serve\(\) handler failed: Error: thrown on purpose/);
      assert.equal(await stop(run), 0, run.stderr());
    }
  },
);

test(
  "serve() with tls answers through the fast path (Deno: its takeover offers HTTP/2), through node:https when switched off",
  { skip: NO_FAST },
  async () => {
    const { cert, key, dir } = await selfSigned();
    for (const fast of [true, false]) {
      const port = await freePort();
      const url = `https://127.0.0.1:${port}/`;
      const env: Record<string, string> = { FAST_VIA_SERVE: "1", FAST_CERT: cert, FAST_KEY: key };
      if (!fast) env.SOCKET_ACTIVATE_HTTP_FAST = "0";
      const run = await serveFixture(`127.0.0.1:${port}`, () => curlOk(["--cacert", cert, url]), env);
      const c = await curl(["--cacert", cert, "--http1.1", "-i", url]);
      assert.equal(c.code, 0, c.stderr);
      const head = c.stdout.slice(0, c.stdout.indexOf("\r\n\r\n"));
      assert.match(head, /^HTTP\/1\.1 200/);
      if (fast) assert.doesNotMatch(head, NODE_HTTP, "the fast path was not taken");
      else assert.match(head, NODE_HTTP, "switched off: not served by node:https");
      if (RUNTIME === "deno") {
        const h2 = await curl([
          "--cacert",
          cert,
          "--http2",
          "-s",
          "-o",
          "/dev/null",
          "-w",
          "%{http_version}",
          url,
        ]);
        assert.equal(h2.code, 0, h2.stderr);
        assert.equal(h2.stdout, fast ? "2" : "1.1");
      }
      assert.equal(await stop(run), 0, run.stderr());
    }
    fs.rmSync(dir, { recursive: true });
  },
);

test(
  "serve() with idleExit goes through node:http: an open keep-alive connection keeps the server, then it exits",
  { skip: NO_FAST },
  async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const run = await serveFixture(`127.0.0.1:${port}`, () => curlOk([`${base}/`]), {
      FAST_VIA_SERVE: "1",
      FAST_IDLE_EXIT: "1",
    });
    // A fast server tells no connection opening or closing, which idleExit
    // needs: serve() takes node:http.
    const [head] = await headAndBody(`${base}/`);
    assert.match(head, NODE_HTTP);
    const s = net.connect(port, "127.0.0.1");
    await new Promise<void>((resolve, reject) => {
      s.once("error", reject);
      s.once("data", () => resolve());
      s.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    });
    let exited = false;
    run.exited(20000).then(() => (exited = true), () => {});
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal(exited, false, "the server exited with a connection open");
    s.end();
    const t0 = Date.now();
    assert.equal(await run.exited(10000), 0, run.stderr());
    assert.ok(Date.now() - t0 < 5000, "the idle exit came late");
  },
);

/** The TCP ports process `pid` listens on (its socket inodes in /proc/net/tcp{,6} in state LISTEN). */
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch { /* closed meanwhile */ }
  }
  const ports: number[] = [];
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of fs.readFileSync(table, "latin1").split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && f[3] === "0A" && inodes.has(f[9])) ports.push(parseInt(f[1].split(":")[1], 16));
    }
  }
  return ports;
}

test(
  "http fast path: the server listens on the inherited socket and nowhere else",
  { skip: NO_FAST },
  async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const run = await serveFixture(`127.0.0.1:${port}`, () => curlOk([`${base}/`]), { FAST_VIA_SERVE: "1" });
    // Bun's fast path had Bun.serve open a private listener for a moment: it
    // must be gone, only the inherited socket left (systemd-socket-activate
    // exec'd the runtime, so the child's PID is the server's).
    assert.deepEqual(listeningPorts(run.child.pid!), [port]);
    const [head] = await headAndBody(`${base}/`);
    assert.doesNotMatch(head, NODE_HTTP, "the fast path was not taken");
    assert.equal(await stop(run), 0, run.stderr());
  },
);

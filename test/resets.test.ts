// No client stops a server: connections that reset while still queued (and
// so fail the server's accept()), a shortage of fds (EMFILE) that clients
// cause, a handler still running when the drain times out. Every API that
// accepts, through systemd-socket-activate, in the runtime running this file
// (test/fixtures/resets.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as dgram from "node:dgram";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { acceptVerdict, keepAccepting } from "../runtimes/deno/net.ts";
import { connect, fixtureCommand, freePort, type Run, RUNTIME, SSA, start, tempDir, until } from "./_util.ts";

const RESETS = 50;
const FIXTURE = "resets.ts";

/** What each case needs of the runtime; a reason to skip where it does not apply. */
interface Case {
  /** The test name's subject. */
  what: string;
  api: "listen" | "serve" | "listenHttp" | "listenDeno" | "listenBun";
  env?: Record<string, string>;
  /** Deno's permissions instead of -A (without --allow-ffi: node:net's ways in). */
  denoFlags?: string[];
  skip?: string | false;
}

const notDeno = RUNTIME !== "deno" && "Deno only (without FFI Deno serves through node:net)";
const CASES: Case[] = [
  { what: "listen()", api: "listen" },
  {
    what: "listen() in Deno without --allow-ffi (node:net)",
    api: "listen",
    denoFlags: noFfi(),
    skip: notDeno,
  },
  { what: "serve()", api: "serve" },
  {
    what: "serve() with SOCKET_ACTIVATE_HTTP_FAST=0",
    api: "serve",
    env: { SOCKET_ACTIVATE_HTTP_FAST: "0" },
    skip: RUNTIME === "node" && "Node has no fast path: serve() above is node:http already",
  },
  {
    what: "serve() in Deno without --allow-ffi (node:net's streams, Deno's server)",
    api: "serve",
    denoFlags: noFfi(),
    skip: notDeno,
  },
  { what: "listenHttp()", api: "listenHttp" },
  { what: "listenDeno()", api: "listenDeno", skip: RUNTIME !== "deno" && "listenDeno() is Deno's" },
  { what: "listenBun()", api: "listenBun", skip: RUNTIME !== "bun" && "listenBun() is Bun's" },
];

function noFfi(): string[] {
  return ["--allow-env", "--allow-net", "--allow-read", "--allow-write"];
}

function command(c: Case, wrap: string[] = []): string[] {
  const cmd = fixtureCommand(FIXTURE);
  if (c.denoFlags !== undefined && RUNTIME === "deno") cmd.splice(2, 1, ...c.denoFlags);
  return [...wrap, ...cmd];
}

/** The fixture under systemd-socket-activate on 127.0.0.1:port, calling its API once `go` exists. */
function startFixture(
  c: Case,
  port: number,
  go: string,
  wrap: string[] = [],
  extra: Record<string, string> = {},
) {
  const env = { RESETS_API: c.api, RESETS_GO: go, ...c.env, ...extra };
  const passed = Object.keys(env).flatMap((k) => ["-E", k]);
  return start([SSA, "-l", `127.0.0.1:${port}`, ...passed, ...command(c, wrap)], env);
}

/**
 * Connects `n` times (the first connection starts the service) and resets
 * each at once (SO_LINGER 0, then close): queued in the backlog, each fails
 * the accept() that takes it in Deno (ENOTCONN).
 */
async function resetBurst(port: number, n: number): Promise<void> {
  const r = start([
    "/usr/bin/python3",
    "-c",
    `
import socket, struct, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
for i in range(n):
    for _ in range(400):
        s = socket.socket()
        try:
            s.connect(("127.0.0.1", port)); break
        except OSError:
            s.close(); time.sleep(0.025)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
print("reset", n)`,
    String(port),
    String(n),
  ]);
  assert.equal(await r.exited(20000), 0, r.stderr());
  assert.equal(r.stdout().trim(), `reset ${n}`);
}

/**
 * What a client on a fresh connection (never a pooled one: the server must
 * accept it) gets: the greeting on a stream, the body of GET / over HTTP.
 */
async function served(api: Case["api"], port: number, ms = 15000): Promise<string> {
  const http = api === "serve" || api === "listenHttp";
  const s = await connect({ port }, ms);
  const got = await new Promise<string>((resolve, reject) => {
    let data = "";
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no answer within ${ms} ms (got ${JSON.stringify(data)})`));
    }, ms);
    const done = () => {
      clearTimeout(timer);
      resolve(data);
    };
    s.on("data", (d) => {
      data += d;
      if (!http && data.includes("\n")) {
        s.end();
        done();
      }
    });
    s.on("end", done);
    s.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    if (http) s.write("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
  });
  s.destroy();
  if (!http) return got;
  const status = got.slice(0, got.indexOf("\r\n"));
  assert.match(status, /^HTTP\/1\.1 200/, got);
  return got.slice(got.indexOf("\r\n\r\n") + 4);
}

async function stopped(run: Run): Promise<void> {
  run.signal("SIGTERM");
  assert.equal(await run.exited(), 0, run.stderr());
  assert.doesNotMatch(run.stderr(), /Uncaught|panicked/);
}

const expected = (api: Case["api"]) => (api === "serve" || api === "listenHttp" ? "ok" : "ok\n");

for (const c of CASES) {
  test(`${c.what} serves a client after ${RESETS} that reset before they were accepted`, {
    skip: c.skip,
  }, async () => {
    const port = await freePort();
    const dir = tempDir();
    const go = path.join(dir, "go");
    const run = startFixture(c, port, go);
    try {
      // All queued before the fixture calls its API, so that each is taken
      // by its accept loop.
      await resetBurst(port, RESETS);
      fs.writeFileSync(go, "");
      await run.stderrMatch(new RegExp(`^ready ${c.api}$`, "m"));
      assert.equal(await served(c.api, port), expected(c.api), run.stderr());
      assert.equal(await served(c.api, port), expected(c.api), "a second client");
      await stopped(run);
    } finally {
      if (run.child.exitCode === null) run.child.kill("SIGKILL");
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}

// Clients holding connections open run a server out of fds: accept() fails
// with EMFILE while it lasts, and the server must serve again once they go.
const LIMIT = 48, HELD = 80;
// Where Deno accepts through node:net, which stops accepting for good at the
// first EMFILE: Deno 2.9's libuv emulation never polls the listener again
// (strace shows no accept4 after it; a plain node:net server in Deno does
// the same), and node:net reports nothing the package could act on.
const denoNodeNet = (c: Case) =>
  RUNTIME === "deno" && (c.denoFlags !== undefined || c.api === "listenHttp" || c.env !== undefined) &&
  "Deno 2.9's node:net never accepts again after one EMFILE (its libuv emulation stops polling the " +
    "listener; not the package's code)";
for (const c of CASES) {
  test(`${c.what} serves again once a shortage of fds (EMFILE) is over`, {
    skip: c.skip || denoNodeNet(c),
  }, async () => {
    const port = await freePort();
    const dir = tempDir();
    const go = path.join(dir, "go"), release = path.join(dir, "release");
    fs.writeFileSync(go, "");
    // prlimit execs the runtime: the PID, and so LISTEN_PID, stays.
    const run = startFixture(c, port, go, ["/usr/bin/prlimit", `--nofile=${LIMIT}:${LIMIT}`, "--"]);
    try {
      // Settled first: Deno 2.9 panics when fds run out while it is still
      // starting (ext/signals/lib.rs:58 unwraps EMFILE), nothing the package can catch.
      assert.equal(await served(c.api, port), expected(c.api), run.stderr());
      const holder = start([
        "/usr/bin/python3",
        "-c",
        `
import os, socket, sys, time
port, n, release = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
held = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
print("held", flush=True)
while not os.path.exists(release):
    time.sleep(0.01)
for s in held:
    s.close()
print("released", flush=True)`,
        String(port),
        String(HELD),
        release,
      ]);
      await until(() => holder.stdout().includes("held"), 15000, () => `the holder: ${holder.stderr()}`);
      // The server takes what it can: then every fd it may have is open, and
      // accept() fails (EMFILE) for the rest, for a while.
      const fds = () => fs.readdirSync(`/proc/${run.child.pid}/fd`).length;
      await until(() => fds() >= LIMIT - 1, 10000, () => `the server to run out of fds (${fds()} open)`);
      await new Promise((r) => setTimeout(r, 300));
      fs.writeFileSync(release, "");
      assert.equal(await holder.exited(), 0, holder.stderr());
      assert.equal(await served(c.api, port), expected(c.api), run.stderr());
      // Deno's loops are the package's own (runtimes/deno/net.ts), and say so.
      if (RUNTIME === "deno") assert.match(run.stderr(), /^socket-activate: accept failed \(EMFILE: /m);
      await stopped(run);
    } finally {
      if (run.child.exitCode === null) run.child.kill("SIGKILL");
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}

// A handler still running when the drain times out: the connection is cut,
// close() resolves, and the process exits 0 (the fixture exits after it).
const DRAIN = 1000;
for (const c of CASES.filter((c) => c.api === "listen" || c.api === "serve")) {
  test(`${c.what} exits 0 after the drain timeout with a handler still running`, {
    skip: c.skip,
  }, async () => {
    const port = await freePort();
    const dir = tempDir();
    const go = path.join(dir, "go");
    fs.writeFileSync(go, "");
    const run = startFixture(c, port, go, [], { RESETS_DRAIN: String(DRAIN) });
    try {
      assert.equal(await served(c.api, port), expected(c.api), run.stderr());
      // listen()'s handler says "pending" for every connection, the first
      // client's too; serve()'s only for /slow.
      const pending = () => run.stderr().split(/^pending$/m).length - 1;
      const want = c.api === "listen" ? 2 : 1;
      // A request (or connection) the handler never finishes.
      let cut: Promise<string>;
      if (c.api === "serve") {
        cut = fetch(`http://127.0.0.1:${port}/slow`).then((r) => r.text()).then(
          (t) => `answered ${t}`,
          () => "cut",
        );
      } else {
        const s = net.connect(port, "127.0.0.1");
        s.on("data", () => {});
        cut = new Promise((resolve) => {
          s.on("error", () => resolve("cut"));
          s.on("close", () => resolve("cut"));
        });
      }
      await until(() => pending() >= want, 10000, () => `the handler to start: ${run.stderr()}`);
      const t0 = Date.now();
      run.signal("SIGTERM");
      assert.equal(await run.exited(), 0, run.stderr());
      const took = Date.now() - t0;
      assert.match(run.stderr(), /^closed$/m);
      assert.doesNotMatch(run.stderr(), /Uncaught|panicked/);
      assert.ok(took >= DRAIN - 50, `exited ${took} ms after SIGTERM, before the drain timeout`);
      assert.ok(took < DRAIN + 5000, `exited ${took} ms after SIGTERM`);
      assert.equal(await cut, "cut");
    } finally {
      if (run.child.exitCode === null) run.child.kill("SIGKILL");
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}

// A peer that resets in the middle of a reply is logged in one line that names the
// connection and what happened; a handler's own exception keeps its stack.
test("listen() logs a peer's reset in one line and a handler's own exception with its stack", async () => {
  const port = await freePort();
  const run = startFixture(CASES[0], port, "");
  try {
    const r = start([
      "/usr/bin/python3",
      "-c",
      `
import socket, struct, sys
port = int(sys.argv[1])
for msg in (b"big\\n", b"throw\\n"):
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    assert s.recv(3) == b"ok\\n"
    s.sendall(msg)
    if msg == b"big\\n":
        # Gone in the middle of the reply: the server's next writes fail.
        s.recv(65536)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        print(s.getsockname()[1], flush=True)
    else:
        try:
            s.recv(1)  # the server closes it once the handler threw (Bun with a reset)
        except ConnectionResetError:
            pass
    s.close()`,
      String(port),
    ]);
    assert.equal(await r.exited(20000), 0, r.stderr());
    const peer = r.stdout().trim();
    await run.stderrMatch(/thrown on purpose/);
    await run.stderrMatch(/^socket-activate: connection from /m);
    const lines = run.stderr().split("\n");
    const reset = lines.filter((l) => l.startsWith("socket-activate: connection from"));
    // Which of the two the kernel reports depends on where the write was when the reset came.
    assert.equal(reset.length, 1, run.stderr());
    assert.match(
      reset[0],
      new RegExp(
        `^socket-activate: connection from 127\\.0\\.0\\.1:${peer} on 127\\.0\\.0\\.1:${port}: ` +
          "(the peer reset it \\(ECONNRESET\\)|broken pipe: the peer had gone when the handler wrote \\(EPIPE\\))$",
      ),
    );
    const at = lines.findIndex((l) =>
      l.startsWith("socket-activate: connection handler failed: Error: thrown on purpose")
    );
    assert.ok(at >= 0, run.stderr());
    assert.match(lines[at + 1], /^\s+at /, `its stack: ${run.stderr()}`);
    assert.equal(lines.filter((l) => /handler failed/.test(l)).length, 1, run.stderr());
    await stopped(run);
  } finally {
    if (run.child.exitCode === null) run.child.kill("SIGKILL");
  }
});

// Datagrams have no accept(): a sender gone before its reply only makes that
// reply fail (ICMP port unreachable for UDP, ECONNREFUSED for unix), which
// must not stop the server either.
test(`listenDatagram() answers a client after ${RESETS} UDP senders that left before their reply`, async () => {
  const port = await freePort();
  const dir = tempDir();
  const go = path.join(dir, "go");
  const env = { RESETS_API: "datagram", RESETS_GO: go };
  const run = start([
    SSA,
    "-d",
    "-l",
    `127.0.0.1:${port}`,
    "-E",
    "RESETS_API",
    "-E",
    "RESETS_GO",
    ...fixtureCommand(FIXTURE),
  ], env);
  try {
    const r = start([
      "/usr/bin/python3",
      "-c",
      `
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"gone %d" % i, ("127.0.0.1", port))
    s.close()
print("sent", n)`,
      String(port),
      String(RESETS),
    ]);
    assert.equal(await r.exited(), 0, r.stderr());
    fs.writeFileSync(go, "");
    await run.stderrMatch(/^ready datagram$/m);
    const s = dgram.createSocket("udp4");
    const replies: string[] = [];
    s.on("message", (m) => replies.push(String(m)));
    await until(
      () => {
        if (replies.length === 0) s.send("hello", port, "127.0.0.1");
        return replies.includes("HELLO");
      },
      10000,
      () => `a reply; stderr: ${run.stderr()}`,
    );
    s.close();
    await stopped(run);
  } finally {
    if (run.child.exitCode === null) run.child.kill("SIGKILL");
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("acceptVerdict() accepts again after a connection's failure, pauses on a shortage, ends only when closed", () => {
  const err = (code: string, name = "Error") => Object.assign(new Error(code), { code, name });
  for (const code of ["ECONNABORTED", "ECONNRESET", "ENOTCONN", "EPROTO", "EPERM", "ENETUNREACH"]) {
    assert.equal(acceptVerdict(err(code)), "again", code);
  }
  // Deno's classes, as its accept() rejects with them.
  for (const name of ["NotConnected", "ConnectionReset", "ConnectionAborted", "Interrupted"]) {
    assert.equal(acceptVerdict(Object.assign(new Error(name), { name })), "again", name);
  }
  for (const code of ["EMFILE", "ENFILE", "ENOBUFS", "ENOMEM", "EINVAL"]) {
    assert.equal(acceptVerdict(err(code)), "backoff");
  }
  assert.equal(acceptVerdict(new Error("no code")), "backoff");
  assert.equal(acceptVerdict(undefined), "backoff");
  assert.equal(
    acceptVerdict(Object.assign(new Error("Listener has been closed"), { name: "BadResource" })),
    "closed",
  );
  assert.equal(acceptVerdict(err("EBADF")), "closed");
});

test("keepAccepting() skips failed connections, waits out a shortage, and rejects once stopped", async () => {
  const failures = [
    Object.assign(new Error("x"), { name: "NotConnected", code: "ENOTCONN" }),
    Object.assign(new Error("y"), { code: "ECONNABORTED" }),
    Object.assign(new Error("Too many open files"), { code: "EMFILE" }),
    Object.assign(new Error("Too many open files"), { code: "EMFILE" }),
  ];
  let closed = false, calls = 0;
  const listener = {
    accept(): Promise<string> {
      calls++;
      if (closed) return Promise.reject(Object.assign(new Error("closed"), { name: "BadResource" }));
      const f = failures.shift();
      return f ? Promise.reject(f) : Promise.resolve("conn");
    },
  };
  const stop = keepAccepting(listener);
  const t0 = Date.now();
  assert.equal(await listener.accept(), "conn");
  assert.equal(calls, 5);
  assert.ok(Date.now() - t0 >= 25, "two pauses, 10 then 20 ms");
  // A stop during a pause ends it at once (here 10 + 20 + 40 + 80 + 160 ms
  // of pauses are ahead); the closed listener then rejects.
  for (let i = 0; i < 5; i++) {
    failures.push(Object.assign(new Error("Too many open files"), { code: "EMFILE" }));
  }
  const next = listener.accept();
  await new Promise((r) => setTimeout(r, 40));
  closed = true;
  const t1 = Date.now();
  stop();
  await assert.rejects(next, { name: "BadResource" });
  assert.ok(Date.now() - t1 < 150, `rejected ${Date.now() - t1} ms after the stop`);
});

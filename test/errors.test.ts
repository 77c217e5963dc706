// Errors that mean what they say: each code below made to happen, in the
// runtime running this file, with the message it must carry.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as dgram from "node:dgram";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { ActivationError, listen, listenDatagram, serve } from "../mod.ts";
import {
  activate,
  cliCommand,
  fixtureCommand,
  freePort,
  refused,
  RUNTIME,
  SSA,
  start,
  tempDir,
} from "./_util.ts";

const g = globalThis as { Deno?: { execPath(): string } };

async function rejection(p: Promise<unknown>): Promise<ActivationError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ActivationError, `not an ActivationError: ${e}`);
    return e;
  }
  assert.fail("did not throw");
}

/** A TCP port on 127.0.0.1 held by this process while `fn` runs. */
async function withPortTaken(fn: (port: number) => Promise<void>): Promise<void> {
  const holder = net.createServer();
  await new Promise<void>((r) => holder.listen({ port: 0, host: "127.0.0.1", exclusive: true }, r));
  try {
    await fn((holder.address() as net.AddressInfo).port);
  } finally {
    await new Promise((r) => holder.close(r));
  }
}

const inUse = (port: number) =>
  new RegExp(`^Not socket-activated, and the fallback 127\\.0\\.0\\.1:${port} is already in use`);

test("listen() with its fallback port in use: EADDRINUSE", async () => {
  await withPortTaken(async (port) => {
    const e = await rejection(listen({ fallback: { port, hostname: "127.0.0.1" } }, (c) => c.close()));
    assert.equal(e.code, "EADDRINUSE");
    assert.match(e.message, inUse(port));
  });
});

test("serve() with its fallback port in use: EADDRINUSE", async () => {
  await withPortTaken(async (port) => {
    const e = await rejection(serve({ fallback: { port, hostname: "127.0.0.1" } }, () => new Response("x")));
    assert.equal(e.code, "EADDRINUSE");
    assert.match(e.message, inUse(port));
  });
});

test("listenServer() with its fallback port in use: EADDRINUSE", async () => {
  const entry = `../runtimes/${RUNTIME}.ts`;
  const { listenServer } = await import(entry);
  await withPortTaken(async (port) => {
    const server = net.createServer();
    const e = await rejection(listenServer(server, { fallback: { port, hostname: "127.0.0.1" } }));
    assert.equal(e.code, "EADDRINUSE");
    assert.match(e.message, inUse(port));
  });
});

test(
  "listenBun() with its fallback port in use: EADDRINUSE",
  { skip: RUNTIME !== "bun" && "Bun only" },
  async () => {
    const { listenBun } = await import("../runtimes/bun.ts");
    await withPortTaken(async (port) => {
      const e = await rejection(listenBun({ fallback: { port, hostname: "127.0.0.1" } }, { data() {} }));
      assert.equal(e.code, "EADDRINUSE");
      assert.match(e.message, inUse(port));
    });
  },
);

test(
  "listenDeno() with its fallback port in use: EADDRINUSE",
  { skip: RUNTIME !== "deno" && "Deno only" },
  async () => {
    const { listenDeno } = await import("../runtimes/deno.ts");
    await withPortTaken(async (port) => {
      const e = await rejection(listenDeno({ fallback: { port, hostname: "127.0.0.1" } }));
      assert.equal(e.code, "EADDRINUSE");
      assert.match(e.message, inUse(port));
    });
  },
);

test("listenDatagram() with its fallback port in use: EADDRINUSE", async () => {
  const holder = dgram.createSocket("udp4");
  await new Promise<void>((r) => holder.bind({ port: 0, address: "127.0.0.1", exclusive: true }, r));
  const port = holder.address().port;
  try {
    const e = await rejection(listenDatagram({ fallback: { port, hostname: "127.0.0.1" } }, () => {}));
    assert.equal(e.code, "EADDRINUSE");
    assert.match(e.message, inUse(port));
  } finally {
    holder.close();
  }
});

test("a fallback this process may not listen on: EPERM, saying what would allow it", async () => {
  // Node and Bun: port 80 without CAP_NET_BIND_SERVICE (EACCES); Deno: no --allow-net.
  const mod = cliCommand().at(-1)!;
  const run = RUNTIME === "deno"
    ? start([
      g.Deno!.execPath(),
      "run",
      "--allow-env",
      "--allow-ffi",
      mod,
      "echo",
      "--port",
      String(await freePort()),
      "--host",
      "127.0.0.1",
    ])
    : start([
      // Root without CAP_NET_BIND_SERVICE, rather than another user: that
      // one could not read a checkout cloned into a 0700 directory.
      "/usr/bin/setpriv",
      "--bounding-set=-net_bind_service",
      ...cliCommand(),
      "echo",
      "--port",
      "80",
      "--host",
      "127.0.0.1",
    ]);
  assert.equal(await run.exited(), 1, run.stderr());
  assert.match(
    run.stderr(),
    /EPERM: Not socket-activated, and this process may not listen on the fallback 127\.0\.0\.1:\d+ /,
  );
  assert.match(
    run.stderr(),
    RUNTIME === "deno"
      ? /: run Deno with --allow-net/
      : /: a port below 1024 needs root or CAP_NET_BIND_SERVICE/,
  );
});

/** Sends datagrams to `target` until `done()`, for systemd-socket-activate -d to start the program. */
async function poke(target: { port: number } | { path: string }, done: () => boolean): Promise<void> {
  const deadline = Date.now() + 15000;
  if ("port" in target) {
    const s = dgram.createSocket("udp4");
    while (!done() && Date.now() < deadline) {
      s.send("x", target.port, "127.0.0.1");
      await new Promise((r) => setTimeout(r, 50));
    }
    s.close();
    return;
  }
  // Node's dgram has no unix datagrams: python sends them.
  const py = start([
    "/usr/bin/python3",
    "-c",
    `import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
for _ in range(300):
    try: s.sendto(b"x", sys.argv[1])
    except OSError: pass
    time.sleep(0.05)`,
    target.path,
  ]);
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  py.child.kill("SIGKILL");
}

test("listen() handed a bound UDP socket says it is bound and points to listenDatagram()", async () => {
  const port = await freePort();
  const run = start([SSA, "-d", "-l", `127.0.0.1:${port}`, ...cliCommand(), "echo"]);
  await poke({ port }, () => /EPROTOTYPE/.test(run.stderr()));
  assert.equal(await run.exited(), 1, run.stderr());
  assert.match(
    run.stderr(),
    new RegExp(
      `EPROTOTYPE: fd 3 "unknown" is a udp dgram bound \\(127\\.0\\.0\\.1:${port}\\), not a stream socket: ` +
        "listen\\(\\) serves stream sockets .*; serve a datagram socket \\(ListenDatagram=\\) with listenDatagram\\(\\)",
    ),
  );
  assert.doesNotMatch(run.stderr(), /connected/);
});

test("listen() handed a bound unix datagram socket says it is bound and points to listenDatagram()", async () => {
  const dir = tempDir();
  const sock = path.join(dir, "dgram.sock");
  try {
    const run = start([SSA, "-d", "-l", sock, ...cliCommand(), "echo"]);
    await poke({ path: sock }, () => /EPROTOTYPE/.test(run.stderr()));
    assert.equal(await run.exited(), 1, run.stderr());
    assert.match(
      run.stderr(),
      new RegExp(
        `EPROTOTYPE: fd 3 "unknown" is a unix dgram bound \\(${
          sock.replaceAll(".", "\\.")
        }\\), not a stream socket: ` +
          ".*with listenDatagram\\(\\)",
      ),
    );
    assert.doesNotMatch(run.stderr(), /connected/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("the echo server logs an Accept=yes connection as served, not as a listener", async () => {
  const port = await freePort();
  const { run, conn } = await activate(["-a", "-l", `127.0.0.1:${port}`], [...cliCommand(), "echo"], {
    port,
  });
  const local = conn.localPort;
  await run.stderrMatch(
    new RegExp(
      `echo: serving the connection from 127\\.0\\.0\\.1:${local} \\(socket from the service manager: true\\)`,
    ),
  );
  assert.doesNotMatch(run.stderr(), /listening on/);
  conn.destroy();
  await run.stderrMatch(/Child \d+ died/);
  run.signal("SIGTERM");
  await run.exited();
});

// LISTEN_FDS=2 where one fd was passed: `env` execs (the PID stays
// LISTEN_PID) with the count raised, and the runtime's own epoll is fd 4.
const promised =
  /EBADF: LISTEN_FDS=2 promises more fds than were passed \(fd 4 is the runtime's own anon_inode:\[eventpoll\]\)/;

test("listen() where LISTEN_FDS promises more fds than were passed: EBADF, not ENOENT", async () => {
  const port = await freePort();
  const { run, conn } = await activate(
    ["-l", `127.0.0.1:${port}`],
    ["env", "LISTEN_FDS=2", ...cliCommand(), "echo"],
    { port },
  );
  conn.on("error", () => {});
  assert.equal(await run.exited(), 1, run.stderr());
  assert.match(run.stderr(), promised);
  assert.doesNotMatch(run.stderr(), /ENOENT|choose one/);
});

test("listen({ name }) of an fd LISTEN_FDS promised but was not passed: EBADF, not ENOTSOCK", async () => {
  const port = await freePort();
  const { run, conn } = await activate(
    ["-l", `127.0.0.1:${port}`],
    ["env", "LISTEN_FDS=2", "LISTEN_FDNAMES=web:admin", ...cliCommand(), "echo", "--name", "admin"],
    { port },
  );
  conn.on("error", () => {});
  assert.equal(await run.exited(), 1, run.stderr());
  assert.match(run.stderr(), promised);
  assert.doesNotMatch(run.stderr(), /ENOTSOCK/);
});

test("listenServer() where LISTEN_FDS promises more fds than were passed: EBADF", async () => {
  const port = await freePort();
  const { run, conn } = await activate(
    ["-l", `127.0.0.1:${port}`],
    ["env", "LISTEN_FDS=2", ...fixtureCommand("native.ts"), "net"],
    { port },
  );
  conn.on("error", () => {});
  assert.equal(await run.exited(), 1, run.stderr());
  assert.match(run.stderr(), promised);
});

test("listenDatagram() of an fd LISTEN_FDS promised but was not passed: EBADF", async () => {
  const port = await freePort();
  const run = start([
    SSA,
    "-d",
    "-l",
    `127.0.0.1:${port}`,
    "env",
    "LISTEN_FDS=2",
    "LISTEN_FDNAMES=dns:more",
    ...fixtureCommand("udp.ts"),
    "0",
    "more", // the name of fd 4, which was not passed
  ]);
  await poke({ port }, () => /EBADF/.test(run.stderr()));
  assert.equal(await run.exited(), 1, run.stderr());
  assert.match(run.stderr(), promised);
});

test("the wrong-bind guard reads the /proc tables where the runtime's cheap probe cannot tell", async () => {
  // A runtime that can neither ask the socket (no FFI, no TCP handle) nor
  // name the fd its listener wraps, and that ignores the fd: the named fd
  // stays untold by the cheap probe, yet the guard must refuse.
  const port = await freePort();
  const { run, conn } = await activate(
    ["-l", `127.0.0.1:${port}`, "--fdname=web"],
    [...fixtureCommand("server.ts"), "blind"],
    { port },
  );
  conn.on("error", () => {});
  assert.equal(await run.exited(), 1, run.stderr());
  assert.match(
    run.stderr(),
    new RegExp(
      `EADDRNOTAVAIL: The runtime was handed fd 3 "web" \\(a tcp stream listening on 127\\.0\\.0\\.1:${port}\\) ` +
        "but listens on 127\\.0\\.0\\.1:\\d+: it ignored the fd",
    ),
  );
  const other = Number(/but listens on 127\.0\.0\.1:(\d+)/.exec(run.stderr())![1]);
  assert.equal(await refused(other), true, "the wrong listener was left open");
});

/** Runs `cmd` under systemd-socket-activate --accept, connects once, and returns its stderr once it exited 1. */
async function acceptYesFailure(cmd: string[], args: string[] = []): Promise<string> {
  const port = await freePort();
  const { run, conn } = await activate(["-a", ...args, "-l", `127.0.0.1:${port}`], cmd, { port });
  conn.on("error", () => {});
  await run.stderrMatch(/Child \d+ died with code \d+/);
  assert.match(run.stderr(), /Child \d+ died with code 1\b/, run.stderr());
  conn.destroy();
  run.signal("SIGTERM");
  await run.exited();
  return run.stderr();
}

test('listen() handed a connected socket not named "connection": EISCONN', async () => {
  // systemd-socket-activate --accept --fdname=web: a connection under a listener's name.
  const err = await acceptYesFailure([...cliCommand(), "echo", "--name", "web"], ["--fdname=web"]);
  assert.match(
    err,
    /EISCONN: fd 3 "web" is a tcp stream connected \(127\.0\.0\.1:\d+\), where a listening socket was expected: for Accept=yes the fd is named "connection"; otherwise pass a listening socket/,
  );
});

for (const mode of ["serve", "node-http"]) {
  const fn = mode === "serve" ? "serve\\(\\)" : "listenHttp\\(\\)";
  test(`${mode === "serve" ? "serve()" : "listenHttp()"} handed an Accept=yes connection: EISCONN`, async () => {
    const err = await acceptYesFailure(fixtureCommand("http.ts").concat(mode));
    assert.match(
      err,
      new RegExp(
        `EISCONN.*fd 3 "unknown" is an Accept=yes connection, not a listening socket: ${fn} serves a ` +
          "listening socket \\(Accept=no, the default in the \\.socket unit\\); serve one connection with listen\\(\\)",
      ),
    );
  });
}

test(
  "listenDeno() / listenBun() handed an Accept=yes connection: EISCONN",
  { skip: RUNTIME === "node" && "listenDeno() and listenBun() are Deno's and Bun's" },
  async () => {
    const err = await acceptYesFailure(fixtureCommand("native.ts").concat(RUNTIME));
    assert.match(
      err,
      /EISCONN.*fd 3 "unknown" is an Accept=yes connection, not a listener: serve it with listen\(\)/,
    );
  },
);

test("a second listen() of an fd already served: EBUSY, and the first goes on serving", async () => {
  const port = await freePort();
  const { run, conn } = await activate(
    ["-l", `127.0.0.1:${port}`],
    [...fixtureCommand("server.ts"), "twice"],
    {
      port,
    },
  );
  await run.stderrMatch(/ready/);
  assert.match(run.stderr(), /EBUSY: fd 3 "unknown" is already served by another listen\(\)/);
  assert.doesNotMatch(run.stderr(), /served twice/);
  const got = await new Promise<string>((resolve, reject) => {
    let s = "";
    conn.on("data", (d) => s += d).on("end", () => resolve(s)).on("error", reject);
  });
  assert.equal(got, "twice\n");
  run.signal("SIGTERM");
  await run.exited();
});

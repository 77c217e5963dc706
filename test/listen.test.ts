// listen() and the echo server through the real systemd-socket-activate, in
// the runtime running this file.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import type * as net from "node:net";
import * as path from "node:path";
import {
  ABSTRACT_BINDS,
  abstractClient,
  activate,
  cliCommand,
  connect,
  exchange,
  expectedEcho,
  fixtureCommand,
  freePort,
  NO_ABSTRACT,
  refused,
  type Run,
  RUNTIME,
  SSA,
  start,
  tempDir,
} from "./_util.ts";

const text = (s: string) => new TextEncoder().encode(s);
const ECHO = () => [...cliCommand(), "echo"];

async function stop(run: Run) {
  run.signal("SIGTERM");
  return await run.exited();
}

test("listen() serves the echo on an activated TCP4 socket, greeting true", async () => {
  const port = await freePort();
  const { run, conn } = await activate(["-l", `127.0.0.1:${port}`], ECHO(), { port });
  const data = text("hello, Wörld! 123 abc\n");
  assert.deepEqual(await exchange(conn, data), expectedEcho(data, true));
  assert.equal(await stop(run), 0, run.stderr());
  assert.match(run.stderr(), /echo: connection 1 from 127\.0\.0\.1:\d+: 23 bytes echoed/);
});

test("listen() serves an activated TCP6 socket", async () => {
  const port = await freePort("::1");
  const { run, conn } = await activate(["-l", `[::1]:${port}`], ECHO(), { port, host: "::1" });
  assert.deepEqual(await exchange(conn, text("v6")), expectedEcho(text("v6"), true));
  assert.equal(await stop(run), 0, run.stderr());
});

test("listen() serves an activated unix path socket", async () => {
  const dir = tempDir();
  const sock = path.join(dir, "echo.sock");
  const { run, conn } = await activate(["-l", sock], ECHO(), { path: sock });
  assert.deepEqual(await exchange(conn, text("unix")), expectedEcho(text("unix"), true));
  assert.equal(await stop(run), 0, run.stderr());
  fs.rmSync(dir, { recursive: true });
});

test("listen() serves an activated abstract unix socket", async () => {
  const name = `@sa-echo-${process.pid}-${Date.now()}`;
  const run = start([SSA, "-l", name, ...ECHO()]);
  // Node 20's net.connect pads abstract names (nodejs/node#50889): python connects.
  const client = abstractClient(name.slice(1), "abstract");
  assert.equal(await client.exited(), 0, client.stderr());
  assert.equal(client.stdout(), "OHAI! systemd socket: true\nABSTRACT");
  assert.equal(await stop(run), 0, run.stderr());
});

test("listen() serves two named sockets at once", async () => {
  const [p1, p2] = [await freePort(), await freePort()];
  const { run, conn } = await activate(
    ["-l", `127.0.0.1:${p1}`, "-l", `127.0.0.1:${p2}`, "--fdname=web:admin"],
    [...fixtureCommand("server.ts"), "two"],
    { port: p1 },
  );
  assert.equal(new TextDecoder().decode(await exchange(conn, new Uint8Array())), "web\n");
  const c2 = await connect({ port: p2 });
  assert.equal(new TextDecoder().decode(await exchange(c2, new Uint8Array())), "admin\n");
  await run.stderrMatch(/ready 3 4/);
  run.child.kill("SIGKILL");
  await run.exited();
});

// Deno 2.9.6 lost both the greeting (EPIPE) and the peer's FIN (the server
// waited forever) on a connection whose peer had shut down its side before
// the server took it: fromSocket in runtimes/node_api/net.ts. With --allow-ffi
// the greeting goes out through send(2); without, after the reactor turns.
const FIN_FIRST: [string, string[]][] = [["", ECHO()]];
if (RUNTIME === "deno") {
  const deno = (globalThis as unknown as { Deno: { execPath(): string } }).Deno.execPath();
  const mod = path.join(import.meta.dirname!, "..", "mod.ts");
  FIN_FIRST.push([" (Deno without --allow-ffi)", [
    deno,
    "run",
    "--allow-env",
    "--allow-net",
    "--allow-read",
    mod,
  ]]);
}
for (const [label, cmd] of FIN_FIRST) {
  test(`the echo server greets and closes a peer that shut down its side before it started${label}`, async () => {
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const { run, conn } = await activate(["-l", `127.0.0.1:${port}`], cmd, { port });
      // exchange() sends nothing and shuts down at once; 10 s bounds the wait for the server's FIN.
      assert.deepEqual(
        await exchange(conn, new Uint8Array(), 65536, 10000),
        expectedEcho(new Uint8Array(), true),
      );
      const again = await connect({ port });
      assert.deepEqual(
        await exchange(again, new Uint8Array(), 65536, 10000),
        expectedEcho(new Uint8Array(), true),
      );
      assert.equal(await stop(run), 0, run.stderr());
    }
  });
  test(`an Accept=yes echo greets and closes a peer that shut down its side before it started${label}`, async () => {
    const port = await freePort();
    // Without FFI or -A, Deno cannot inspect fd 3 to tell it is connected: systemd names it "connection".
    const named = label === "" ? [] : ["--fdname=connection"];
    const { run, conn } = await activate(["-a", ...named, "-l", `127.0.0.1:${port}`], cmd, { port });
    assert.deepEqual(
      await exchange(conn, new Uint8Array(), 65536, 10000),
      expectedEcho(new Uint8Array(), true),
    );
    await run.stderrMatch(/Child \d+ died with code 0/);
    run.signal("SIGTERM");
    await run.exited();
  });
}

test("listen() serves an Accept=yes connection as a single connection, then exits", async () => {
  const port = await freePort();
  const { run, conn } = await activate(["-a", "-l", `127.0.0.1:${port}`], ECHO(), { port });
  assert.deepEqual(await exchange(conn, text("accept")), expectedEcho(text("accept"), true));
  // systemd-socket-activate --accept keeps running; the per-connection child must have exited.
  await run.stderrMatch(/Child \d+ died with code 0/);
  run.signal("SIGTERM");
  await run.exited();
});

test("listen() falls back to its own port when not activated, greeting false", async () => {
  const port = await freePort();
  const run = start([...ECHO(), "--port", String(port), "--host", "127.0.0.1"]);
  const conn = await connect({ port });
  assert.deepEqual(await exchange(conn, text("fallback")), expectedEcho(text("fallback"), false));
  assert.equal(await stop(run), 0, run.stderr());
});

test("listen() does not adopt fds whose LISTEN_PID names another process: it falls back", async () => {
  const port = await freePort();
  const run = start([...ECHO(), "--port", String(port), "--host", "127.0.0.1"], {
    LISTEN_PID: "1",
    LISTEN_FDS: "1",
  });
  const conn = await connect({ port });
  assert.deepEqual(await exchange(conn, text("x")), expectedEcho(text("x"), false));
  assert.equal(await stop(run), 0, run.stderr());
});

test("listen() with a malformed environment exits non-zero with the message and binds nothing", async () => {
  const port = await freePort();
  const cmd = [...ECHO(), "--port", String(port), "--host", "127.0.0.1"].map((a) => `'${a}'`).join(" ");
  const run = start(["/bin/sh", "-c", `LISTEN_FDS='1 ' LISTEN_PID=$$ exec ${cmd} 3</dev/null`]);
  assert.equal(await run.exited(), 1);
  assert.match(run.stderr(), /EINVAL: Cannot parse LISTEN_FDS="1 "/);
  assert.equal(await refused(port), true, "the fallback port must stay closed");
});

test("listen() refuses a datagram fd with a clear error", async () => {
  const port = await freePort();
  const run = start([SSA, "-d", "-l", `127.0.0.1:${port}`, ...ECHO()]);
  const dgram = await import("node:dgram");
  const s = dgram.createSocket("udp4");
  const deadline = Date.now() + 10000;
  while (!/EPROTOTYPE/.test(run.stderr()) && Date.now() < deadline) {
    s.send("x", port, "127.0.0.1");
    await new Promise((r) => setTimeout(r, 50));
  }
  s.close();
  assert.equal(await run.exited(), 1);
  assert.match(
    run.stderr(),
    new RegExp(
      `EPROTOTYPE: fd 3 "unknown" is a udp dgram .*\\(127\\.0\\.0\\.1:${port}\\)[^\\n]*listen\\(\\) serves stream sockets`,
    ),
  );
});

test("the echo is byte for byte: 10 MiB of every byte value, and UTF-8 split across writes", async () => {
  const port = await freePort();
  const { run, conn } = await activate(["-l", `127.0.0.1:${port}`], [...ECHO(), "--quiet"], { port });
  const data = new Uint8Array(10 * 1024 * 1024);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 11)) & 0xff;
  // Odd-sized writes split multi-byte UTF-8 and every other pattern across packets.
  assert.deepEqual(await exchange(conn, data, 65521), expectedEcho(data, true));
  const utf8 = text("ünïcödé ✓ 𝄞 ".repeat(5000));
  const c2 = await connect({ port });
  assert.deepEqual(await exchange(c2, utf8, 7), expectedEcho(utf8, true));
  assert.equal(await stop(run), 0, run.stderr());
});

test("the echo keeps up with many small writes", async () => {
  const port = await freePort();
  const { run, conn } = await activate(["-l", `127.0.0.1:${port}`], [...ECHO(), "--quiet"], { port });
  conn.setNoDelay(true);
  const data = text("ab1-".repeat(5000)); // 20,000 bytes in 10,000 writes of 2 bytes
  assert.deepEqual(await exchange(conn, data, 2), expectedEcho(data, true));
  assert.equal(await stop(run), 0, run.stderr());
});

test("200 concurrent connections, every byte accounted for", async () => {
  const port = await freePort();
  const { run, conn } = await activate(["-l", `127.0.0.1:${port}`], [...ECHO(), "--quiet"], { port });
  conn.destroy();
  const results = await Promise.all(Array.from({ length: 200 }, async (_, i) => {
    const data = text(`connection ${i}: `.repeat(100 + i));
    const c = await connect({ port });
    return { got: await exchange(c, data, 1000), want: expectedEcho(data, true) };
  }));
  let bytes = 0;
  for (const { got, want } of results) {
    assert.deepEqual(got, want);
    bytes += got.length;
  }
  assert.ok(bytes > 200 * 1500);
  assert.equal(await stop(run), 0, run.stderr());
});

test("SIGTERM with connections open: they drain and the server exits 0", async () => {
  const port = await freePort();
  const { run, conn } = await activate(["-l", `127.0.0.1:${port}`], ECHO(), { port });
  const c2 = await connect({ port });
  // Both connections greeted (accepted) before the signal: a fixed sleep was
  // not enough on a loaded machine, and a connection still in the backlog at
  // SIGTERM is nobody's to drain (systemd-socket-activate keeps the listener open).
  const greeting = "OHAI! systemd socket: true\n";
  const greeted = (s: net.Socket) =>
    new Promise<void>((resolve) => {
      let got = "";
      const on = (d: Buffer) => {
        got += d;
        if (!got.includes("\n")) return;
        s.off("data", on);
        assert.equal(got, greeting);
        resolve();
      };
      s.on("data", on);
    });
  await Promise.all([greeted(conn), greeted(c2)]);
  run.signal("SIGTERM");
  await new Promise((r) => setTimeout(r, 200));
  const late = text("still served after SIGTERM");
  const [a, b] = await Promise.all([exchange(conn, late), exchange(c2, late)]);
  const echoed = expectedEcho(late, true).subarray(greeting.length);
  assert.deepEqual(a, echoed);
  assert.deepEqual(b, echoed);
  assert.equal(await run.exited(), 0, run.stderr());
  assert.match(run.stderr(), /echo: stopping/);
  assert.equal(await refused(port), true, "no longer listening after the drain");
});

function socketInodes(pid: number): string[] {
  return fs.readdirSync(`/proc/${pid}/fd`).map((fd) => {
    try {
      return fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      return "";
    }
  }).filter((l) => l.startsWith("socket:"));
}

test("a child process spawned by the server holds no inherited listening socket", async () => {
  const port = await freePort();
  const { run, conn } = await activate(
    ["-l", `127.0.0.1:${port}`],
    [...fixtureCommand("server.ts"), "spawn"],
    { port },
  );
  const deadline = Date.now() + 10000;
  while (!/^\d+\n/.test(run.stdout()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const childPid = Number(run.stdout().trim());
  assert.ok(childPid > 0, run.stderr());
  const listening = fs.readlinkSync(`/proc/${run.child.pid}/fd/3`);
  assert.match(listening, /^socket:/);
  try {
    assert.deepEqual(socketInodes(childPid).filter((s) => s === listening), []);
  } finally {
    process.kill(childPid, "SIGKILL"); // the server is killed below: its child must not outlive the test
    conn.destroy();
    run.child.kill("SIGKILL");
    await run.exited();
  }
});

if (RUNTIME === "deno") {
  test("Deno without --allow-ffi says once on stderr that children inherit the socket", async () => {
    const port = await freePort();
    const deno = (globalThis as unknown as { Deno: { execPath(): string } }).Deno.execPath();
    const cmd = [
      deno,
      "run",
      "--allow-env",
      "--allow-net",
      "--allow-read",
      path.join(import.meta.dirname!, "..", "mod.ts"),
      "echo",
    ];
    const { run, conn } = await activate(["-l", `127.0.0.1:${port}`], cmd, { port });
    assert.deepEqual(await exchange(conn, text("x")), expectedEcho(text("x"), true));
    assert.equal(await stop(run), 0, run.stderr());
    assert.equal(run.stderr().match(/cannot mark fd 3 close-on-exec in deno without FFI/g)?.length, 1);
  });
}

if (RUNTIME === "deno") {
  // With FFI, Deno serves an inherited listening fd through a Deno.Listener
  // of its own that took the socket over (runtimes/ffi/takeover.ts), not
  // node:net: the process then holds the socket on a second fd, the
  // listener's. Without -A, Deno may read no /proc: the takeover reads it
  // through libc.
  const deno = () => (globalThis as unknown as { Deno: { execPath(): string } }).Deno.execPath();
  const mod = () => path.join(import.meta.dirname!, "..", "mod.ts");
  const cases: [string, string[], "tcp" | "unix"][] = [
    ["-A, TCP", ["-A"], "tcp"],
    ["-A, unix path", ["-A"], "unix"],
    ["--allow-ffi without -A, TCP", ["--allow-ffi", "--allow-env", "--allow-net=127.0.0.1"], "tcp"],
    [
      "--allow-ffi without -A, unix path",
      ["--allow-ffi", "--allow-env", "--allow-net", "--allow-read", "--allow-write"],
      "unix",
    ],
  ];
  for (const [label, flags, kind] of cases) {
    test(`Deno (${label}) serves the inherited socket through a Deno.Listener that took it over`, async () => {
      let listenArg: string, first: { port: number } | { path: string };
      if (kind === "tcp") {
        const port = await freePort();
        [listenArg, first] = [`127.0.0.1:${port}`, { port }];
      } else {
        const sock = path.join(tempDir(), "echo.sock");
        [listenArg, first] = [sock, { path: sock }];
      }
      const { run, conn } = await activate(
        ["-l", listenArg],
        [deno(), "run", ...flags, mod(), "echo"],
        first,
      );
      const data = new Uint8Array(1 << 20).map((_, i) => i * 7);
      assert.deepEqual(await exchange(conn, data), expectedEcho(data, true));
      const inherited = fs.readlinkSync(`/proc/${run.child.pid}/fd/3`);
      assert.equal(socketInodes(run.child.pid!).filter((s) => s === inherited).length, 2, run.stderr());
      assert.doesNotMatch(run.stderr(), /socket-activate:/); // no warning, no fallback
      assert.equal(await stop(run), 0, run.stderr());
    });
  }
}

if (RUNTIME === "deno") {
  // With FFI, Deno serves an Accept=yes connection as a Deno.Conn of its own
  // that took the socket over (role "client" in runtimes/ffi/takeover.ts), not
  // through node:net: fd 3 is closed once the socket sits on the Deno.Conn's
  // fd, so it is no socket while the connection is served.
  const deno = () => (globalThis as unknown as { Deno: { execPath(): string } }).Deno.execPath();
  const mod = () => path.join(import.meta.dirname!, "..", "mod.ts");
  const cases: [string, string[], "tcp" | "tcp6" | "unix"][] = [
    ["-A, TCP", ["-A"], "tcp"],
    ["-A, TCP6", ["-A"], "tcp6"],
    ["-A, unix path", ["-A"], "unix"],
    ["--allow-ffi without -A, TCP", ["--allow-ffi", "--allow-env", "--allow-net=127.0.0.1"], "tcp"],
  ];
  for (const [label, flags, kind] of cases) {
    test(`Deno (${label}) serves an Accept=yes connection through a Deno.Conn that took it over`, async () => {
      let listenArg: string, first: { port: number; host?: string } | { path: string };
      if (kind === "unix") {
        const sock = path.join(tempDir(), "echo.sock");
        [listenArg, first] = [sock, { path: sock }];
      } else {
        const host = kind === "tcp6" ? "::1" : "127.0.0.1";
        const port = await freePort(host);
        [listenArg, first] = [kind === "tcp6" ? `[::1]:${port}` : `127.0.0.1:${port}`, { port, host }];
      }
      const { run, conn } = await activate(
        ["-a", "-l", listenArg],
        [deno(), "run", ...flags, mod(), "echo"],
        first,
      );
      const got: Uint8Array[] = [];
      const clientPort = conn.localPort;
      const closed = new Promise<void>((resolve, reject) => {
        conn.on("data", (d) => got.push(new Uint8Array(d)));
        conn.on("error", reject);
        conn.on("close", () => resolve());
      });
      const deadline = Date.now() + 10000;
      while (got.length === 0) {
        assert.ok(Date.now() < deadline, `no greeting within 10 s: ${run.stderr()}`);
        await new Promise((r) => setTimeout(r, 5));
      }
      const pid = Number(/ as PID (\d+)/.exec(run.stderr())?.[1]);
      let fd3 = "";
      try {
        fd3 = fs.readlinkSync(`/proc/${pid}/fd/3`);
      } catch { /* closed */ }
      assert.doesNotMatch(fd3, /^socket:/, `pid ${pid}: fd 3 is still the connection, so node:net serves it`);
      const data = new Uint8Array(1 << 20).map((_, i) => i * 7);
      conn.end(data);
      await closed;
      const all = new Uint8Array(got.reduce((n, g) => n + g.length, 0));
      got.reduce((off, g) => (all.set(g, off), off + g.length), 0);
      assert.deepEqual(all, expectedEcho(data, true));
      await run.stderrMatch(/Child \d+ died with code 0/);
      const from = kind === "unix"
        ? "unix"
        : kind === "tcp6"
        ? `\\[::1\\]:${clientPort}`
        : `127\\.0\\.0\\.1:${clientPort}`;
      assert.match(run.stderr(), new RegExp(`echo: connection 1 from ${from}: ${1 << 20} bytes echoed`));
      assert.doesNotMatch(run.stderr(), /socket-activate:/); // no warning, no fallback
      run.signal("SIGTERM");
      await run.exited();
    });
  }
}

if (RUNTIME === "deno") {
  // Without FFI or -A, Deno serves through node:net, and the first write to
  // each connection goes to its PipeWrap (see fromSocket in runtimes/node_api/net.ts).
  test("Deno without --allow-ffi or -A serves an activated unix path through node:net, FIN-first peers too", async () => {
    const dir = tempDir();
    const sock = path.join(dir, "echo.sock");
    const deno = (globalThis as unknown as { Deno: { execPath(): string } }).Deno.execPath();
    const mod = path.join(import.meta.dirname!, "..", "mod.ts");
    const { run, conn } = await activate(
      ["-l", sock],
      [deno, "run", "--allow-env", "--allow-net", "--allow-read", "--allow-write", mod],
      { path: sock },
    );
    assert.deepEqual(await exchange(conn, text("unix")), expectedEcho(text("unix"), true));
    for (let i = 0; i < 5; i++) {
      const fin = await connect({ path: sock });
      assert.deepEqual(
        await exchange(fin, new Uint8Array(), 65536, 10000),
        expectedEcho(new Uint8Array(), true),
      );
    }
    // Its path unknown, the address is unix's, not TCP's ":0".
    assert.match(run.stderr(), /echo: listening on unix \(socket from the service manager: true\)/);
    assert.equal(await stop(run), 0, run.stderr());
    fs.rmSync(dir, { recursive: true });
  });
}

if (RUNTIME === "deno") {
  test("Deno without --allow-ffi or -A, handed an unnamed connected socket, says how to name it", async () => {
    const port = await freePort();
    const deno = (globalThis as unknown as { Deno: { execPath(): string } }).Deno.execPath();
    const mod = path.join(import.meta.dirname!, "..", "mod.ts");
    const { run, conn } = await activate(
      ["-a", "-l", `127.0.0.1:${port}`],
      [deno, "run", "--allow-env", "--allow-net", "--allow-read", mod],
      { port },
    );
    await exchange(conn, new Uint8Array(), 65536, 10000);
    await run.stderrMatch(/Child \d+ died with code 1/);
    assert.match(run.stderr(), /fd 3 "unknown" is a socket deno could not inspect, .*name it "connection"/);
    run.signal("SIGTERM");
    await run.exited();
  });
}

test("listen() falls back to a unix path of its own", async () => {
  const dir = tempDir();
  const sock = path.join(dir, "fallback.sock");
  const run = start([...ECHO(), "--path", sock]);
  const conn = await connect({ path: sock });
  assert.deepEqual(await exchange(conn, text("path")), expectedEcho(text("path"), false));
  assert.equal(await stop(run), 0, run.stderr());
  fs.rmSync(dir, { recursive: true });
});

test("listen() falls back to an abstract name", { skip: ABSTRACT_BINDS ? false : NO_ABSTRACT }, async () => {
  const name = `sa-fb-${process.pid}-${Date.now()}`;
  const run = start([...ECHO(), "--path", `@${name}`]);
  const client = abstractClient(name, "abs");
  assert.equal(await client.exited(), 0, client.stderr());
  assert.equal(client.stdout(), "OHAI! systemd socket: false\nABS");
  assert.equal(await stop(run), 0, run.stderr());
});

test("listen() refuses an abstract fallback where libuv would pad it", {
  skip: ABSTRACT_BINDS ? "this runtime binds abstract names as given" : false,
}, async () => {
  const name = `sa-fb-${process.pid}-${Date.now()}`;
  const run = start([...ECHO(), "--path", `@${name}`]);
  assert.equal(await run.exited(), 1);
  assert.match(run.stderr(), /binds abstract unix names padded with NUL bytes.*nodejs\/node#50889/);
});

test("a handler written with web streams (readable.pipeTo(writable)) echoes 4 MiB intact", async () => {
  const port = await freePort();
  const { run, conn } = await activate(
    ["-l", `127.0.0.1:${port}`],
    [...fixtureCommand("server.ts"), "pipe"],
    { port },
  );
  const data = new Uint8Array(4 * 1024 * 1024);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
  assert.deepEqual(await exchange(conn, data, 60000), data);
  run.child.kill("SIGKILL");
  await run.exited();
});

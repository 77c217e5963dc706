// listenDatagram() through systemd-socket-activate --datagram, in the runtime
// running this file.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as dgram from "node:dgram";
import {
  cliCommand,
  fixtureCommand,
  freePort,
  NODE_FFI,
  RUNTIME,
  SSA,
  start,
  tempDir,
  until,
} from "./_util.ts";

// Node 22 and 24 (and 26 with SOCKET_ACTIVATE_FFI=0) have no unix datagram socket.
const NODE_NO_UNIX = RUNTIME === "node" && !NODE_FFI;

function client(family: "udp4" | "udp6") {
  const s = dgram.createSocket(family);
  const replies: string[] = [];
  s.on("message", (m) => replies.push(String(m)));
  return { s, replies };
}

/** Sends `text` every 50 ms until a reply arrives: the first one starts the service. */
async function knock(c: { s: dgram.Socket; replies: string[] }, text: string, port: number, host: string) {
  const deadline = Date.now() + 10000;
  while (c.replies.length === 0 && Date.now() < deadline) {
    c.s.send(text, port, host);
    await new Promise((r) => setTimeout(r, 50));
  }
}

for (const [family, host] of [["udp4", "127.0.0.1"], ["udp6", "::1"]] as const) {
  test(`listenDatagram() answers on an activated ${family} socket`, async () => {
    const port = await freePort(host);
    const run = start([
      SSA,
      "-d",
      "-l",
      host === "::1" ? `[::1]:${port}` : `${host}:${port}`,
      ...fixtureCommand("udp.ts"),
    ]);
    const c = client(family);
    // The first datagram that reaches systemd-socket-activate starts the service.
    await knock(c, "hello", port, host);
    assert.ok(c.replies.length >= 1 && c.replies.every((r) => r === "HELLO"), JSON.stringify(c.replies));
    await run.stderrMatch(new RegExp(`ready true .*"port":${port}`));
    c.s.close();
    run.child.kill("SIGKILL");
    await run.exited();
  });
}

test("listenDatagram(): 10,000 datagrams on loopback, every one answered", async () => {
  const port = await freePort();
  const run = start([SSA, "-d", "-l", `127.0.0.1:${port}`, ...fixtureCommand("udp.ts")]);
  const c = client("udp4");
  await knock(c, "warm-up", port, "127.0.0.1");
  await new Promise((r) => setTimeout(r, 100));
  c.replies.length = 0;
  // A window of 64 in flight keeps the loopback queues from overflowing.
  const total = 10000;
  for (let sent = 0; sent < total;) {
    while (sent - c.replies.length < 64 && sent < total) c.s.send(`d${sent++}`, port, "127.0.0.1");
    await new Promise((r) => setTimeout(r, 0));
  }
  await until(
    () => c.replies.length >= total,
    20000,
    () => `${total - c.replies.length} of ${total} replies`,
  );
  const got = new Set(c.replies);
  const lost = total - got.size;
  c.s.close();
  run.child.kill("SIGKILL");
  await run.exited();
  assert.equal(lost, 0, `${lost} of ${total} datagrams lost`);
  assert.ok(got.has("D0") && got.has(`D${total - 1}`));
});

test("listenDatagram() falls back to a port of its own when not activated", async () => {
  const port = await freePort();
  const run = start([...fixtureCommand("udp.ts"), String(port)]);
  await run.stderrMatch(/ready false/);
  const c = client("udp4");
  await knock(c, "fallback", port, "127.0.0.1");
  assert.equal(c.replies[0], "FALLBACK");
  c.s.close();
  run.child.kill("SIGKILL");
  await run.exited();
});

test("listenDatagram() refuses a stream socket with a clear error", async () => {
  const port = await freePort();
  const run = start([SSA, "-l", `127.0.0.1:${port}`, ...fixtureCommand("udp.ts")]);
  const net = await import("node:net");
  await until(() => {
    const s = net.connect(port, "127.0.0.1");
    s.on("error", () => {});
    s.on("connect", () => s.destroy());
    return run.stderr().includes("EPROTOTYPE") || run.child.exitCode !== null;
  }, 10000);
  assert.equal(await run.exited(), 1);
  assert.match(
    run.stderr(),
    /EPROTOTYPE: fd 3 "unknown" is a tcp stream .*listenDatagram\(\) serves UDP and unix datagram sockets/,
  );
});

for (const kind of ["path", "abstract"]) {
  test(`listenDatagram() on an activated unix datagram socket (${kind}): Deno, Bun, Node 26 answer, Node 22 refuses`, async () => {
    const dir = tempDir();
    const address = kind === "path" ? `${dir}/dgram.sock` : `@sa-dgram-${process.pid}-${Date.now()}`;
    const run = start([SSA, "-d", "-l", address, ...fixtureCommand("udp.ts")]);
    // A client with a name of its own, so that the reply can reach it; it
    // knocks until the service answers or exits.
    const client = start([
      "/usr/bin/python3",
      "-c",
      `
import socket, sys, time
dest = b"\\0" + sys.argv[1][1:].encode() if sys.argv[1].startswith("@") else sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[2]); s.settimeout(0.1)
for _ in range(100):
    try:
        s.sendto(b"unix dgram", dest)
        print(s.recv(100).decode()); break
    except OSError:
        time.sleep(0.05)`,
      address,
      `${dir}/client.sock`,
    ]);
    if (!NODE_NO_UNIX) {
      assert.equal(await client.exited(), 0, client.stderr());
      assert.equal(client.stdout(), "UNIX DGRAM\n");
      await run.stderrMatch(/ready true \{"transport":"unix","path":"/);
      run.child.kill("SIGKILL");
      await run.exited();
      return;
    }
    assert.equal(await run.exited(), 1);
    client.child.kill("SIGKILL");
    assert.match(
      run.stderr(),
      /ENOTSUP: fd 3 "unknown" is a unix dgram .*: Node [\d.]+ cannot receive on a unix datagram socket .*Node 26\.9 or later/,
    );
  });
}

test("a unix datagram reply to a sender that has gone: ECONNREFUSED to an awaited send, no crash unawaited", {
  skip: NODE_NO_UNIX && "Node 22 and 24 have no unix datagram socket",
}, async () => {
  const dir = tempDir();
  const address = `${dir}/dgram.sock`;
  const run = start([SSA, "-d", "-l", address, ...fixtureCommand("udp.ts")]);
  // Knocks until served, then two senders that are gone when their (late)
  // replies leave, then one more that must still be answered.
  const client = start([
    "/usr/bin/python3",
    "-c",
    `
import socket, sys, time
def ask(name, text, wait=True):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[2] + "/" + name); s.settimeout(0.1)
    for _ in range(100 if wait else 1):
        try:
            s.sendto(text, sys.argv[1])
            if not wait: break
            print(s.recv(100).decode(), flush=True); break
        except OSError:
            time.sleep(0.05)
    s.close()
ask("a.sock", b"first")
ask("gone1.sock", b"late one", False)
ask("gone2.sock", b"report two", False)
time.sleep(0.8)
ask("b.sock", b"after")`,
    address,
    dir,
  ]);
  assert.equal(await client.exited(), 0, client.stderr());
  assert.equal(client.stdout(), "FIRST\nAFTER\n");
  await run.stderrMatch(/send failed/);
  run.child.kill("SIGKILL");
  await run.exited();
  assert.match(
    run.stderr(),
    new RegExp(
      `send failed ECONNREFUSED true: Cannot send a datagram to "${dir}/gone2.sock": nothing receives there`,
    ),
  );
  assert.doesNotMatch(run.stderr(), /Unhandled|unhandled|gone1/);
});

test("SOCK_SEQPACKET: Node and Bun serve the echo packet by packet, Deno refuses with EPROTOTYPE", async () => {
  const sock = `${tempDir()}/seq.sock`;
  const run = start([SSA, "--seqpacket", "-l", sock, ...cliCommand(), "echo", "--quiet"]);
  const client = start([
    "/usr/bin/python3",
    "-c",
    `
import socket, sys, time
for _ in range(100):
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); s.connect(sys.argv[1]); break
    except OSError:
        time.sleep(0.05)
s.settimeout(5)
got = [s.recv(100)]
for m in (b"a", b"bb", b"ccc"):
    s.send(m); got.append(s.recv(100))
print(repr(got))`,
    sock,
  ]);
  if (RUNTIME !== "deno") {
    assert.equal(await client.exited(), 0, client.stderr());
    assert.equal(client.stdout(), "[b'OHAI! systemd socket: true\\n', b'A', b'BB', b'CCC']\n");
    run.signal("SIGTERM");
    assert.equal(await run.exited(), 0, run.stderr());
    return;
  }
  assert.equal(await run.exited(), 1);
  client.child.kill("SIGKILL");
  assert.match(
    run.stderr(),
    /EPROTOTYPE: fd 3 "unknown" is a unix seqpacket .*not a stream socket.*Deno does not serve SOCK_SEQPACKET; Node and Bun do/,
  );
});

test(
  "listenDatagram() in Deno without --allow-ffi names the flag",
  { skip: RUNTIME !== "deno" && "Deno only" },
  async () => {
    const port = await freePort();
    const deno = (globalThis as unknown as { Deno: { execPath(): string } }).Deno.execPath();
    const fixture = fixtureCommand("udp.ts").at(-1)!;
    const run = start([
      SSA,
      "-d",
      "-l",
      `127.0.0.1:${port}`,
      deno,
      "run",
      "--allow-env",
      "--allow-net",
      "--allow-read",
      fixture,
    ]);
    const c = client("udp4");
    const deadline = Date.now() + 10000;
    while (run.child.exitCode === null && Date.now() < deadline) {
      c.s.send("x", port, "127.0.0.1");
      await new Promise((r) => setTimeout(r, 50));
    }
    c.s.close();
    assert.equal(await run.exited(), 1);
    assert.match(run.stderr(), /EPERM: .*--allow-ffi/);
  },
);

// The default stop (src/_signals.ts) through the real systemd-socket-activate,
// in the runtime running this file: SIGTERM drains every server of the
// process, a program's own handler keeps the signal, `signals: false` leaves
// it alone, and a second signal ends at once.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as dgram from "node:dgram";
import * as net from "node:net";
import * as path from "node:path";
import { fixtureCommand, freePort, ROOT, type Run, SSA, start, until } from "./_util.ts";
import { parseResponses, type RawResponse } from "./_raw_http.ts";

const FIXTURE = (mode: string) => [...fixtureCommand("graceful.ts"), mode];

/** A client connection that collects what comes back and notes when the server closes it. */
interface Client {
  socket: net.Socket;
  got: () => Uint8Array;
  closed: Promise<void>;
  isClosed: () => boolean;
}

async function client(port: number): Promise<Client> {
  const deadline = Date.now() + 10000;
  for (;;) {
    try {
      const socket = await new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect(port, "127.0.0.1");
        s.once("connect", () => resolve(s));
        s.once("error", reject);
      });
      const parts: Buffer[] = [];
      let isClosed = false;
      socket.on("data", (d: Buffer) => parts.push(d));
      socket.on("error", () => {});
      const closed = new Promise<void>((r) => socket.on("close", () => r(void (isClosed = true))));
      return { socket, got: () => new Uint8Array(Buffer.concat(parts)), closed, isClosed: () => isClosed };
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

const get = (c: Client, path: string) => c.socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
const responses = (c: Client): RawResponse[] => parseResponses(c.got(), [], c.isClosed()).responses;
const inFlight = (run: Run) => (run.stderr().match(/^in flight$/gm) ?? []).length;

test("SIGTERM drains serve(), listenHttp() and listen() at once: every request in flight answered with Connection: close, idle keep-alive connections closed, exit 0; and listenDatagram() sends the reply in flight", async () => {
  const [web, http, raw, udpPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const udp = start([SSA, "--datagram", "-l", `127.0.0.1:${udpPort}`, ...FIXTURE("dgram")]);
  const sock = dgram.createSocket("udp4");
  const replies: string[] = [];
  sock.on("message", (m) => replies.push(String(m)));
  await udp.stderrMatch(/Listening on/);
  sock.send("ping", udpPort, "127.0.0.1");
  const address = `@sa-graceful-${process.pid}-${Date.now()}`;
  const receiver = start(["/usr/bin/python3", path.join(ROOT, "test", "_notify_receiver.py"), address, "30"]);
  await until(() => receiver.stdout().startsWith("ready\n"), 10000, "the notify receiver");
  const run = start([
    SSA,
    ...["-l", `127.0.0.1:${web}`, "-l", `127.0.0.1:${http}`, "-l", `127.0.0.1:${raw}`],
    "--fdname=web:http:raw",
    ...["-E", `NOTIFY_SOCKET=${address}`],
    ...FIXTURE("all"),
  ]);
  // 50 keep-alive connections left idle after one answer, then 20 requests in flight.
  const idle: Client[] = [];
  for (let i = 0; i < 50; i++) idle.push(await client(i % 2 ? http : web));
  for (const c of idle) get(c, "/");
  await until(
    () => idle.every((c) => responses(c).length === 1),
    10000,
    "the idle connections' first answers",
  );
  const slow: Client[] = [];
  for (let i = 0; i < 16; i++) slow.push(await client(i % 2 ? http : web));
  for (const c of slow) get(c, "/slow");
  const rawSlow: Client[] = [];
  for (let i = 0; i < 4; i++) rawSlow.push(await client(raw));
  for (const c of rawSlow) c.socket.write(`chunk ${rawSlow.indexOf(c)}`);
  await until(() => inFlight(run) === 20, 10000, () => `20 requests in flight; stderr:\n${run.stderr()}`);
  await until(() => inFlight(udp) === 1, 10000, () => `a datagram in flight; stderr:\n${udp.stderr()}`);
  run.signal("SIGTERM");
  udp.signal("SIGTERM");
  assert.equal(await udp.exited(), 0, udp.stderr());
  await until(() => replies.length > 0, 5000, "the datagram's reply");
  sock.close();
  assert.deepEqual(replies, ["PING"]);
  await Promise.all([...idle, ...slow, ...rawSlow].map((c) => c.closed));
  for (const c of slow) {
    const [r] = responses(c);
    assert.equal(r?.status, 200, run.stderr());
    assert.equal(new TextDecoder().decode(r.body), "slow done");
    assert.equal(r.headers.connection, "close");
  }
  assert.deepEqual(rawSlow.map((c) => new TextDecoder().decode(c.got())), [
    "chunk 0",
    "chunk 1",
    "chunk 2",
    "chunk 3",
  ]);
  assert.equal(await run.exited(), 0, run.stderr());
  assert.match(
    run.stderr(),
    /socket-activate: SIGTERM: stopping: \d+ connection\(s\) still in flight, given up to 10000 ms/,
  );
  assert.equal(
    run.stderr().match(/socket-activate: stopped: every server closed in \d+ ms/g)?.length,
    1,
    run.stderr(),
  );
  // Node's BARRIER=1 datagrams come from systemd-notify itself.
  const states = () =>
    receiver.stdout().split("\n").slice(1).filter(Boolean).map((l) => JSON.parse(l).data)
      .filter((d: string) => d !== "BARRIER=1");
  await until(() => states().length > 0, 10000, "STOPPING=1");
  receiver.child.kill("SIGKILL");
  assert.deepEqual(states(), ["STOPPING=1\nEXTEND_TIMEOUT_USEC=11000000"]);
});

test("a program's own SIGTERM handler keeps the signal; SIGINT twice ends at once (130); signals: false keeps the runtime's default; what holds the process ends at the drain deadline", async () => {
  const ports = [await freePort(), await freePort(), await freePort(), await freePort()];
  const [own, twice, off, held] = ["own", "serve", "off", "held"].map((mode, i) =>
    // The second SIGINT must come while a request is surely still in flight.
    start([
      SSA,
      "-l",
      `127.0.0.1:${ports[i]}`,
      "-E",
      "DRAIN_MS=600",
      "-E",
      `SLOW_MS=${mode === "serve" ? 30000 : 400}`,
      ...FIXTURE(mode),
    ])
  );
  const clients = await Promise.all(ports.map(client));
  for (const c of clients) get(c, "/slow");
  const runs = [own, twice, off, held];
  await until(() => runs.every((r) => inFlight(r) === 1), 10000, "a request in flight in each");
  own.signal("SIGTERM");
  off.signal("SIGTERM");
  held.signal("SIGTERM");
  twice.signal("SIGINT");
  await twice.stderrMatch(/SIGINT: stopping/);
  twice.signal("SIGINT");

  assert.equal(await own.exited(), 3, own.stderr());
  assert.equal(responses(clients[0])[0]?.status, 200);
  assert.match(own.stderr(), /own handler/);
  assert.doesNotMatch(own.stderr(), /socket-activate: SIGTERM/);

  assert.equal(await twice.exited(), 130, twice.stderr());
  assert.match(twice.stderr(), /socket-activate: SIGINT while stopping after SIGINT: exiting now/);

  assert.equal(await off.exited(), "SIGTERM", off.stderr());
  assert.doesNotMatch(off.stderr(), /socket-activate: SIGTERM/);

  assert.equal(await held.exited(), 0, held.stderr());
  assert.equal(responses(clients[3])[0]?.status, 200);
  assert.match(
    held.stderr(),
    /socket-activate: still running \d+ ms after SIGTERM: exiting/,
  );
});

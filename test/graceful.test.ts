// The default stop (src/_signals.ts) through the real systemd-socket-activate,
// in the runtime running this file: SIGTERM drains every server of the
// process, a program's own handler keeps the signal, `signals: false` leaves
// it alone, and a second signal ends at once.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as dgram from "node:dgram";
import * as net from "node:net";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fixtureCommand, freePort, ROOT, type Run, RUNTIME, SSA, start, tempDir, until } from "./_util.ts";
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

test(
  "SIGTERM drains serve(), listenHttp() and listen() at once: every request in flight answered with Connection: close, idle keep-alive connections closed, STOPPING=1 with EXTEND_TIMEOUT_USEC=, exit 0",
  {
    // The real systemd's test below makes the same checks but the datagram's: CI time.
    skip: noSystemd() === undefined ? "checked under a real systemd below" : false,
  },
  async () => {
    const [web, http, raw] = [await freePort(), await freePort(), await freePort()];
    const address = `@sa-graceful-${process.pid}-${Date.now()}`;
    const receiver = start([
      "/usr/bin/python3",
      path.join(ROOT, "test", "_notify_receiver.py"),
      address,
      "30",
    ]);
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
    run.signal("SIGTERM");
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
  },
);

test("a program's own SIGTERM handler keeps the signal; SIGINT twice ends at once (130); signals: false keeps the runtime's default; what holds the process ends at the drain deadline; listenDatagram() sends the reply in flight", async () => {
  const udpPort = await freePort();
  const udp = start([SSA, "--datagram", "-l", `127.0.0.1:${udpPort}`, ...FIXTURE("dgram")]);
  const sock = dgram.createSocket("udp4");
  sock.unref(); // a failed assertion must not keep the test process alive
  const replies: string[] = [];
  sock.on("message", (m) => replies.push(String(m)));
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
  await udp.stderrMatch(/Listening on/);
  sock.send("ping", udpPort, "127.0.0.1");
  const runs = [own, twice, off, held, udp];
  await until(() => runs.every((r) => inFlight(r) === 1), 30000, "a request in flight in each");
  udp.signal("SIGTERM");
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

  assert.equal(await udp.exited(), 0, udp.stderr());
  await until(() => replies.length > 0, 5000, "the datagram's reply");
  sock.close();
  assert.deepEqual(replies, ["PING"]);

  assert.equal(await held.exited(), 0, held.stderr());
  assert.equal(responses(clients[3])[0]?.status, 200);
  assert.match(
    held.stderr(),
    /socket-activate: still running \d+ ms after SIGTERM: exiting/,
  );
});

const TOOL = path.join(ROOT, "test", "real-systemd");

/** Why a real systemd cannot boot here (test/real-systemd), or undefined when it can. */
function noSystemd(): string | undefined {
  if (RUNTIME === "node" && process.versions.node.startsWith("22.")) {
    return "the drain under a real systemd is Node 26's: the same code on every line (CI time)";
  }
  if (process.getuid!() !== 0) return "booting systemd in private namespaces needs root";
  if (!fs.existsSync("/lib/systemd/systemd")) return "no /lib/systemd/systemd (Debian package systemd)";
  if (!fs.existsSync("/sys/fs/cgroup/unified") || !fs.existsSync("/sys/fs/cgroup/systemd")) {
    return "test/real-systemd/boot.sh needs the hybrid cgroup layout, which this machine does not mount";
  }
  for (const cmd of ["unshare", "nsenter", "script", "pgrep"]) {
    if (spawnSync("sh", ["-c", `command -v ${cmd}`]).status !== 0) return `no ${cmd} on PATH`;
  }
  return undefined;
}

test(
  "under a real systemd: `systemctl restart` with 20 requests in flight answers all 20 past TimeoutStopSec= " +
    "(EXTEND_TIMEOUT_USEC=), the next process serves what arrives meanwhile, `systemctl stop` is Result=success",
  { skip: noSystemd() ?? false, timeout: 120_000 },
  async () => {
    const dir = tempDir();
    const [web, http, raw] = [await freePort(), await freePort(), await freePort()];
    const units = path.join(dir, "units");
    fs.mkdirSync(units);
    const err = path.join(dir, "err.log");
    const sockets = { web, http, raw };
    for (const [name, port] of Object.entries(sockets)) {
      fs.writeFileSync(
        path.join(units, `${name}.socket`),
        `[Socket]\nListenStream=127.0.0.1:${port}\nFileDescriptorName=${name}\nService=app.service\n`,
      );
    }
    fs.writeFileSync(
      path.join(units, "graceful.target"),
      "[Unit]\nWants=web.socket http.socket raw.socket\n",
    );
    fs.writeFileSync(
      path.join(units, "app.service"),
      [
        "[Unit]",
        "Requires=web.socket http.socket raw.socket",
        "StartLimitIntervalSec=0",
        "[Service]",
        "NotifyAccess=all",
        // Shorter than the drain: only EXTEND_TIMEOUT_USEC= keeps systemd from killing it.
        "TimeoutStopSec=300ms",
        "SendSIGKILL=yes",
        `WorkingDirectory=${ROOT}`,
        `Environment=PATH=${process.env.PATH} HOME=${process.env.HOME} SLOW_MS=1000`,
        `ExecStart=${FIXTURE("all").join(" ")}`,
        `StandardError=append:${err}`,
        "",
      ].join("\n"),
    );
    const run = start([
      "bash",
      path.join(TOOL, "run-units.sh"),
      units,
      "graceful.target",
      "--",
      "bash",
      "-c",
      `printf %s "$SYSTEMCTL" > ${dir}/systemctl; while [ ! -e ${dir}/done ]; do sleep 0.05; done`,
    ]);
    const log = () => fs.existsSync(err) ? fs.readFileSync(err, "utf8") : "";
    try {
      await until(() => fs.existsSync(`${dir}/systemctl`), 30000, () => `systemd to boot: ${run.stdout()}`);
      const systemctl = fs.readFileSync(`${dir}/systemctl`, "utf8").split(" ");
      const sysctl = async (...args: string[]) => {
        const r = start([...systemctl, ...args]);
        assert.equal(await r.exited(30000), 0, `systemctl ${args.join(" ")}: ${r.stderr()}`);
        return r.stdout().trim();
      };
      // 50 keep-alive connections left idle after one answer, then 20 requests in flight.
      const idle: Client[] = [];
      for (let i = 0; i < 50; i++) idle.push(await client(i % 2 ? http : web));
      for (const c of idle) get(c, "/");
      await until(() => idle.every((c) => responses(c).length === 1), 30000, "the idle connections' answers");
      const slow: Client[] = [];
      for (let i = 0; i < 16; i++) slow.push(await client(i % 2 ? http : web));
      for (const c of slow) get(c, "/slow");
      const rawSlow: Client[] = [];
      for (let i = 0; i < 4; i++) rawSlow.push(await client(raw));
      for (const c of rawSlow) c.socket.write(`chunk ${rawSlow.indexOf(c)}`);
      await until(
        () => (log().match(/^in flight$/gm) ?? []).length === 20,
        30000,
        () => `20 in flight:\n${log()}`,
      );
      const oldPid = await sysctl("show", "-P", "MainPID", "app.service");
      const restart = sysctl("restart", "app.service");
      await until(() => /SIGTERM: stopping/.test(log()), 10000, () => `the drain:\n${log()}`);
      const during = await client(web);
      get(during, "/pid");
      await Promise.all([...idle, ...slow, ...rawSlow].map((c) => c.closed));
      for (const c of slow) {
        const [r] = responses(c);
        assert.equal(r?.status, 200, log());
        assert.equal(new TextDecoder().decode(r.body), "slow done");
        assert.equal(r.headers.connection, "close");
      }
      assert.deepEqual(
        rawSlow.map((c) => new TextDecoder().decode(c.got())),
        [0, 1, 2, 3].map((i) => `chunk ${i}`),
      );
      await restart;
      await until(() => responses(during).length === 1, 30000, "the answer from the next process");
      const next = new TextDecoder().decode(responses(during)[0].body);
      assert.match(next, /^\d+$/);
      assert.notEqual(next, oldPid, "served by the next process");
      during.socket.destroy();
      await sysctl("stop", "app.service");
      assert.equal(await sysctl("show", "-P", "Result", "app.service"), "success", log());
      assert.equal(await sysctl("show", "-P", "ExecMainStatus", "app.service"), "0", log());
      assert.doesNotMatch(log(), /still running|exiting now/);
    } finally {
      fs.writeFileSync(`${dir}/done`, "");
      await run.exited(30000).catch(() => {});
      try {
        const unshare = fs.readFileSync(path.join(units, ".unshare"), "utf8").trim();
        const init = fs.readFileSync(`/proc/${unshare}/task/${unshare}/children`, "utf8").trim();
        if (init !== "") process.kill(Number(init.split(" ")[0]), "SIGKILL");
      } catch { /* shut down as it should */ }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  },
);

// inspectFd() and `socket-activate inspect` on real inherited fds, passed by
// systemd-socket-activate or by a shell, in the runtime running this file.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { ActivationError, inspectFd } from "../mod.ts";
import { activate, cliCommand, freePort, RUNTIME, start, tempDir } from "./_util.ts";

async function inspectUnder(args: string[], first: { port: number; host?: string } | { path: string }) {
  const { run, conn } = await activate(args, [...cliCommand(), "inspect", "--json"], first);
  const status = await run.exited();
  conn.destroy();
  assert.equal(status, 0, run.stderr());
  return JSON.parse(run.stdout());
}

test("inspect --json reports a TCP4 listener from systemd-socket-activate", async () => {
  const port = await freePort();
  const r = await inspectUnder(["-l", `127.0.0.1:${port}`], { port });
  assert.equal(r.activated, true);
  assert.deepEqual(
    r.fds.map((
      f: Record<string, unknown>,
    ) => [f.fd, f.name, f.kind, f.type, f.family, f.listening, f.address, f.port]),
    [
      [3, "unknown", "tcp", "stream", "ipv4", true, "127.0.0.1", port],
    ],
  );
  assert.equal(r.fds[0].cloexec, true);
});

test("inspect --json reports a TCP6 listener", async () => {
  const port = await freePort("::1");
  const r = await inspectUnder(["-l", `[::1]:${port}`], { port, host: "::1" });
  assert.equal(r.fds[0].family, "ipv6");
  assert.equal(r.fds[0].address, "::1");
  assert.equal(r.fds[0].port, port);
  assert.equal(r.fds[0].listening, true);
});

test("inspect --json reports two named fds: a unix path and an abstract name", async () => {
  const dir = tempDir();
  const sock = path.join(dir, "app.sock");
  const abs = `@sa-test-${process.pid}-${Date.now()}`;
  const r = await inspectUnder(["-l", sock, "-l", abs, "--fdname=web:admin"], { path: sock });
  assert.deepEqual(
    r.fds.map((f: Record<string, unknown>) => [f.fd, f.name, f.kind, f.type, f.listening, f.address]),
    [
      [3, "web", "unix", "stream", true, sock],
      [4, "admin", "unix", "stream", true, abs],
    ],
  );
  fs.rmSync(dir, { recursive: true });
});

test("inspect --json reports a UDP socket passed with --datagram", async () => {
  const port = await freePort();
  // systemd-socket-activate -d starts the program on the first datagram.
  const r = start([
    "/usr/bin/systemd-socket-activate",
    "-d",
    "-l",
    `127.0.0.1:${port}`,
    ...cliCommand(),
    "inspect",
    "--json",
  ]);
  const dgram = await import("node:dgram");
  const s = dgram.createSocket("udp4");
  const deadline = Date.now() + 10000;
  while (r.stdout() === "" && Date.now() < deadline) {
    s.send("x", port, "127.0.0.1");
    await new Promise((res) => setTimeout(res, 50));
  }
  s.close();
  assert.equal(await r.exited(), 0, r.stderr());
  const j = JSON.parse(r.stdout());
  assert.deepEqual([j.fds[0].kind, j.fds[0].type, j.fds[0].port, j.fds[0].address], [
    "udp",
    "dgram",
    port,
    "127.0.0.1",
  ]);
});

function shellActivated(fdSetup: string, fds: number, extra = "") {
  // LISTEN_PID=$$ then exec keeps the PID, as the oracle in protocol.md does.
  const cmd = cliCommand().map((a) => `'${a}'`).join(" ");
  return start([
    "/bin/sh",
    "-c",
    `${extra} LISTEN_FDS=${fds} LISTEN_PID=$$ exec ${cmd} inspect --json ${fdSetup}`,
  ]);
}

test("inspect --json tells a FIFO, a file and /dev/null apart", async () => {
  const dir = tempDir();
  const fifo = path.join(dir, "fifo");
  const file = path.join(dir, "file");
  fs.writeFileSync(file, "x");
  start(["mkfifo", fifo]);
  await new Promise((r) => setTimeout(r, 100));
  const r = shellActivated(`3<>'${fifo}' 4<'${file}' 5</dev/null`, 3);
  assert.equal(await r.exited(), 0, r.stderr());
  const j = JSON.parse(r.stdout());
  assert.deepEqual(j.fds.map((f: Record<string, unknown>) => [f.fd, f.kind, f.target]), [
    [3, "fifo", fifo],
    [4, "file", file],
    [5, "file", "/dev/null"],
  ]);
  fs.rmSync(dir, { recursive: true });
});

test("inspect --json reports EBADF for a promised fd that is not open, and exits 1", async () => {
  // The runtime opens fds of its own (epoll, eventfd, ...) in the lowest free
  // numbers at start-up, so a missing fd 4 is taken before anyone can look:
  // promise far more fds than a runtime opens.
  const r = shellActivated("3</dev/null", 500);
  assert.equal(await r.exited(), 1);
  const j = JSON.parse(r.stdout());
  assert.equal(j.error.code, "EBADF");
  assert.match(j.error.message, /LISTEN_FDS="500" promises fds 3 to 502, but fd \d+ is not open/);
});

test("inspect --json reports a malformed LISTEN_FDS with its errno name, and exits 1", async () => {
  const r = start([
    "/bin/sh",
    "-c",
    `LISTEN_FDS='2 ' LISTEN_PID=$$ exec ${cliCommand().map((a) => `'${a}'`).join(" ")} inspect --json`,
  ]);
  assert.equal(await r.exited(), 1);
  assert.deepEqual(JSON.parse(r.stdout()).error.code, "EINVAL");
  assert.match(JSON.parse(r.stdout()).error.message, /LISTEN_FDS="2 "/);
});

test("inspect --json is not activated when LISTEN_PID names another process", async () => {
  const r = start([...cliCommand(), "inspect", "--json"], { LISTEN_PID: "1", LISTEN_FDS: "1" });
  assert.equal(await r.exited(), 0, r.stderr());
  assert.deepEqual(JSON.parse(r.stdout()), { activated: false, fds: [] });
});

test("inspectFd() throws EBADF for a closed fd and TypeError for a negative one", () => {
  assert.throws(() => inspectFd(100000), (e) => e instanceof ActivationError && e.code === "EBADF");
  assert.throws(() => inspectFd(-1), TypeError);
});

test("inspect --json names a netlink socket (ListenNetlink=) where the runtime can ask it", async () => {
  // python opens the netlink socket as fd 3 and execs the CLI with LISTEN_PID = its own PID.
  const r = start([
    "/usr/bin/python3",
    "-c",
    `
import os, socket, sys
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
fd = s.detach()
if fd != 3: os.dup2(fd, 3)
os.set_inheritable(3, True)
os.environ["LISTEN_FDS"] = "1"; os.environ["LISTEN_FDNAMES"] = "audit"; os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[1], sys.argv[1:])`,
    ...cliCommand(),
    "inspect",
    "--json",
  ]);
  assert.equal(await r.exited(), 0, r.stderr());
  const fd = JSON.parse(r.stdout()).fds[0];
  assert.equal(fd.name, "audit");
  assert.equal(fd.kind, "other");
  assert.match(fd.target, /^socket:\[\d+\]$/);
  // Node reads /proc, which has no table for netlink here; FFI asks the socket.
  assert.equal(fd.family, RUNTIME === "node" ? "other" : "netlink");
});

// Deno with the README's permissions: no -A, so no /proc through Deno's own
// file API. With FFI the answer comes from the fd itself.
const denoOnly = RUNTIME !== "deno" && "Deno only";
const denoCli = (flags: string[]) => {
  const deno = (globalThis as unknown as { Deno: { execPath(): string } }).Deno.execPath();
  return [deno, "run", ...flags, path.join(import.meta.dirname!, "..", "mod.ts"), "inspect", "--json"];
};

test("inspect --json in Deno with --allow-env --allow-net --allow-ffi (no -A) answers from the socket", {
  skip: denoOnly,
}, async () => {
  const port = await freePort();
  const { run, conn } = await activate(
    ["-l", `127.0.0.1:${port}`],
    denoCli(["--allow-env", "--allow-net", "--allow-ffi"]),
    { port },
  );
  assert.equal(await run.exited(), 0, run.stderr() + run.stdout());
  conn.destroy();
  const [fd] = JSON.parse(run.stdout()).fds;
  assert.deepEqual(
    [fd.kind, fd.type, fd.family, fd.listening, fd.address, fd.port, fd.cloexec],
    ["tcp", "stream", "ipv4", true, "127.0.0.1", port, true],
  );
  assert.match(fd.target, /^socket:\[\d+\]$/);
});

test("inspect --json in Deno with --allow-env --allow-ffi (no -A) tells a FIFO, a file and /dev/null", {
  skip: denoOnly,
}, async () => {
  const dir = tempDir();
  const fifo = path.join(dir, "fifo");
  const file = path.join(dir, "file");
  fs.writeFileSync(file, "x");
  await start(["mkfifo", fifo]).exited();
  const cmd = denoCli(["--allow-env", "--allow-ffi"]).map((a) => `'${a}'`).join(" ");
  const r = start([
    "/bin/sh",
    "-c",
    `LISTEN_FDS=3 LISTEN_PID=$$ exec ${cmd} 3<>'${fifo}' 4<'${file}' 5</dev/null`,
  ]);
  assert.equal(await r.exited(), 0, r.stderr() + r.stdout());
  assert.deepEqual(JSON.parse(r.stdout()).fds.map((f: Record<string, unknown>) => [f.fd, f.kind, f.target]), [
    [3, "fifo", fifo],
    [4, "file", file],
    [5, "file", "/dev/null"],
  ]);
  fs.rmSync(dir, { recursive: true });
});

test("inspect --json in Deno without --allow-ffi or -A names exactly the missing flag", {
  skip: denoOnly,
}, async () => {
  const port = await freePort();
  const { run, conn } = await activate(["-l", `127.0.0.1:${port}`], denoCli(["--allow-env", "--allow-net"]), {
    port,
  });
  assert.equal(await run.exited(), 1, run.stderr());
  conn.destroy();
  const { error } = JSON.parse(run.stdout());
  assert.equal(error.code, "EPERM");
  assert.match(error.message, /^Deno may not read \/proc\/self\/fd(info)?\/3: run it with --allow-ffi /);
});

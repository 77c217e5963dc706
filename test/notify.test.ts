// notify() and its shorthands against a real AF_UNIX datagram receiver with
// SO_PASSCRED, in the runtime running this file.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { ActivationError, barrier, notify, storeFds } from "../mod.ts";
import {
  activate,
  cliCommand,
  exchange,
  fixtureCommand,
  freePort,
  NODE_FFI,
  ROOT,
  type Run,
  RUNTIME,
  start,
  tempDir,
  until,
  withEnv,
} from "./_util.ts";

// Node 22 and 24 (and 26 with SOCKET_ACTIVATE_FFI=0) send through systemd-notify.
const TOOL = RUNTIME === "node" && !NODE_FFI;

interface Datagram {
  data: string;
  pid: number;
  fds: number;
}

async function receiver(address: string): Promise<{ run: Run; messages(): Datagram[] }> {
  const run = start(["/usr/bin/python3", path.join(ROOT, "test", "_notify_receiver.py"), address, "20"]);
  await until(
    () => run.stdout().startsWith("ready\n"),
    10000,
    () => `the receiver's ready line: ${run.stderr()}`,
  );
  return {
    run,
    messages: () => run.stdout().split("\n").slice(1).filter(Boolean).map((l) => JSON.parse(l)),
  };
}

const EXPECTED = [
  "X_TEST=1\nSTATUS=two lines",
  "READY=1",
  "STATUS=Serving 3 connections",
  /^RELOADING=1\nMONOTONIC_USEC=\d+$/,
  "STOPPING=1",
  "WATCHDOG=1",
  "EXTEND_TIMEOUT_USEC=5000000",
  "ERRNO=2",
  "MAINPID=4242",
];

for (const kind of ["path", "abstract"]) {
  test(`notify() sends each state as one datagram with this process's PID (${kind} NOTIFY_SOCKET)`, async () => {
    const address = kind === "path"
      ? path.join(tempDir(), "notify.sock")
      : `@sa-notify-${process.pid}-${Date.now()}`;
    const r = await receiver(address);
    const app = start(fixtureCommand("notify.ts"), { NOTIFY_SOCKET: address });
    assert.equal(await app.exited(), 0, app.stderr());
    assert.equal(app.stdout(), `done ${JSON.stringify(EXPECTED.map(() => true))}\n`);
    // systemd-notify follows each state with BARRIER=1 and an fd it waits on
    // until the receiver closes it.
    const perState = TOOL ? 2 : 1;
    await until(() => r.messages().length >= EXPECTED.length * perState);
    let got = r.messages();
    r.run.child.kill("SIGKILL");
    if (TOOL) {
      const barriers = got.filter((_, i) => i % 2 === 1).map((m) => `${m.data} with ${m.fds} fd`);
      assert.deepEqual(barriers, EXPECTED.map(() => "BARRIER=1 with 1 fd"), JSON.stringify(got));
      got = got.filter((_, i) => i % 2 === 0);
    }
    // systemd-notify ends the datagram with a newline.
    const texts = got.map((m) => (TOOL ? m.data.replace(/\n$/, "") : m.data));
    assert.equal(texts.length, EXPECTED.length, JSON.stringify(got));
    EXPECTED.forEach((want, i) =>
      typeof want === "string" ? assert.equal(texts[i], want) : assert.match(texts[i], want)
    );
    // The sender is the app itself (systemd-notify sends with its caller's
    // PID when it runs as root, as here).
    for (const m of got) assert.equal(m.pid, app.child.pid, JSON.stringify(m));
    // node:ffi's ExperimentalWarning is not the package's to print.
    assert.equal(app.stderr(), "");
  });
}

test("notify() is a no-op returning false without NOTIFY_SOCKET", async () => {
  assert.equal(await notify("READY=1", { env: {} }), false);
});

test("notify() rejects vsock and relative addresses with clear errors", async () => {
  await assert.rejects(
    notify("READY=1", { env: { NOTIFY_SOCKET: "vsock:2:1234" } }),
    (e) =>
      e instanceof ActivationError && e.code === "ENOTSUP" &&
      /NOTIFY_SOCKET="vsock:2:1234" is an AF_VSOCK address/.test(e.message),
  );
  await assert.rejects(
    notify("READY=1", { env: { NOTIFY_SOCKET: "run/notify" } }),
    (e) =>
      e instanceof ActivationError && e.code === "EINVAL" &&
      /NOTIFY_SOCKET="run\/notify" is neither/.test(e.message),
  );
});

test("notify() says when nothing receives at NOTIFY_SOCKET", async () => {
  const missing = path.join(tempDir(), "nobody.sock");
  await assert.rejects(
    notify("READY=1", { env: { NOTIFY_SOCKET: missing } }),
    (e) => e instanceof ActivationError && e.code === "ECONNREFUSED" && e.message.includes(missing),
  );
});

const NODE_ONLY = RUNTIME === "node" ? false : `${RUNTIME} sends the datagram itself, without systemd-notify`;

/**
 * Runs `fn` with PATH set to `value` (Node's notify() looks systemd-notify up
 * there), and node:ffi turned off: on Node 26 these tests are also those of
 * SOCKET_ACTIVATE_FFI=0.
 */
function withPath<T>(value: string, fn: () => Promise<T>): Promise<T> {
  return withEnv({ PATH: value, SOCKET_ACTIVATE_FFI: "0" }, fn);
}

test(
  "notify() in Node names PATH when systemd-notify is not on it (ENOENT)",
  { skip: NODE_ONLY },
  async () => {
    const empty = tempDir();
    await withPath(empty, () =>
      assert.rejects(
        notify("READY=1", { env: { NOTIFY_SOCKET: "@sa-no-tool" } }),
        (e) =>
          e instanceof ActivationError && e.code === "ENOENT" &&
          e.message.includes('NOTIFY_SOCKET="@sa-no-tool"') &&
          e.message.includes(`no systemd-notify on PATH="${empty}"`) &&
          e.message.includes("Debian package systemd") &&
          e.message.includes(
            "Node 26.9 and later send it themselves over node:ffi, unless SOCKET_ACTIVATE_FFI=0",
          ),
      ));
  },
);

test("notify() in Node waits for the receiver's confirmation, and says when none comes (ETIMEDOUT)", {
  skip: NODE_ONLY,
}, async () => {
  const address = path.join(tempDir(), "hold.sock");
  // A receiver that reads every datagram but keeps the fds it is sent, so
  // BARRIER=1 is never answered.
  const hold = start([
    "/usr/bin/python3",
    "-c",
    `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1]); print("ready", flush=True)
s.settimeout(10); kept = []
while True:
    data, fds, _, _ = socket.recv_fds(s, 100, 4); kept += fds; print(repr(data), len(fds), flush=True)`,
    address,
  ]);
  await until(() => hold.stdout().startsWith("ready"));
  const t0 = Date.now();
  try {
    await withPath(process.env.PATH!, () =>
      assert.rejects(
        notify("STATUS=held", { env: { NOTIFY_SOCKET: address } }),
        (e) =>
          e instanceof ActivationError && e.code === "ETIMEDOUT" &&
          e.message.includes(`sent "STATUS=held" to NOTIFY_SOCKET="${address}"`) &&
          e.message.includes("within 5 s") && e.message.includes("BARRIER=1"),
      ));
  } finally {
    hold.child.kill("SIGKILL");
  }
  const waited = Date.now() - t0;
  assert.ok(waited >= 4900, `rejected after ${waited} ms`);
  // The state itself was delivered; only the confirmation is missing.
  // (systemd-notify then sends ERRNO=110 as it fails, systemd's main() boilerplate.)
  assert.match(hold.stdout(), /^ready\nb'STATUS=held(\\n)?' 0\nb'BARRIER=1' 1\n/);
});

test(
  "notify() in Node sends again when a signal kills systemd-notify (systemctl stop's SIGTERM), EINTR after 3",
  {
    skip: NODE_ONLY,
  },
  async () => {
    const real = spawnSync("sh", ["-c", "command -v systemd-notify"], { encoding: "utf8" }).stdout.trim();
    const dir = tempDir();
    // A systemd-notify that SIGTERMs itself as many times as DIR/kills says, as
    // systemd does to every process in the cgroup of a unit it stops.
    fs.writeFileSync(
      path.join(dir, "systemd-notify"),
      `#!/bin/sh\nk=$(cat ${dir}/kills)\nif [ "$k" -gt 0 ]; then echo $((k - 1)) > ${dir}/kills; kill -TERM $$; fi\n` +
        `exec ${real} "$@"\n`,
      { mode: 0o755 },
    );
    const address = `@sa-retry-${process.pid}-${Date.now()}`;
    const r = await receiver(address);
    const env = { NOTIFY_SOCKET: address };
    await withPath(`${dir}:${process.env.PATH}`, async () => {
      fs.writeFileSync(path.join(dir, "kills"), "2");
      assert.equal(await notify("STOPPING=1", { env }), true);
      fs.writeFileSync(path.join(dir, "kills"), "3");
      await assert.rejects(
        notify("STATUS=never", { env }),
        (e) =>
          e instanceof ActivationError && e.code === "EINTR" &&
          e.message.includes(
            `NOTIFY_SOCKET="${address}" of "STATUS=never": systemd-notify was killed by SIGTERM 3 times`,
          ),
      );
    });
    await until(() => r.messages().length >= 2);
    r.run.child.kill("SIGKILL");
    assert.deepEqual(r.messages().map((m) => m.data.replace(/\n$/, "")), ["STOPPING=1", "BARRIER=1"]);
  },
);

test("reloading() sends CLOCK_MONOTONIC in microseconds", async () => {
  const address = `@sa-mono-${process.pid}-${Date.now()}`;
  const r = await receiver(address);
  const app = start(fixtureCommand("notify.ts"), { NOTIFY_SOCKET: address });
  assert.equal(await app.exited(), 0, app.stderr());
  await until(() => r.messages().some((m) => m.data.startsWith("RELOADING=1")));
  const usec = Number(
    /MONOTONIC_USEC=(\d+)/.exec(r.messages().find((m) => m.data.startsWith("RELOADING=1"))!.data)![1],
  );
  const py = start(["/usr/bin/python3", "-c", "import time; print(int(time.monotonic() * 1e6))"]);
  await py.exited();
  const now = Number(py.stdout());
  r.run.child.kill("SIGKILL");
  assert.ok(now - usec >= 0 && now - usec < 10_000_000, `MONOTONIC_USEC ${usec} vs CLOCK_MONOTONIC ${now}`);
});

test("the echo server sends READY=1, STATUS and STOPPING=1 in order under systemd-socket-activate", async () => {
  const address = `@sa-echo-notify-${process.pid}-${Date.now()}`;
  const r = await receiver(address);
  const port = await freePort();
  const { run, conn } = await activate(
    ["-l", `127.0.0.1:${port}`, "-E", `NOTIFY_SOCKET=${address}`],
    [...cliCommand(), "echo", "--quiet"],
    { port },
  );
  await exchange(conn, new TextEncoder().encode("x"));
  await until(() => r.messages().some((m) => m.data.startsWith("STATUS=")));
  run.signal("SIGTERM");
  assert.equal(await run.exited(), 0, run.stderr());
  await until(() => r.messages().some((m) => m.data.startsWith("STOPPING=1")));
  r.run.child.kill("SIGKILL");
  // Node's BARRIER=1 datagrams come from systemd-notify itself.
  const states = r.messages().filter((m) => m.data !== "BARRIER=1");
  const texts = states.map((m) => m.data.replace(/\n$/, ""));
  assert.deepEqual(texts, ["READY=1", "STATUS=1 connection(s) served", "STOPPING=1"]);
  for (const m of states) assert.equal(m.pid, run.child.pid);
});

test("storeFds() passes the listening socket itself to the fd store, and barrier() waits for it (Deno, Bun, Node 26)", async () => {
  const address = `@sa-fdstore-${process.pid}-${Date.now()}`;
  const r = await receiver(address);
  const port = await freePort();
  const { run, conn } = await activate(
    ["-l", `127.0.0.1:${port}`, "-E", `NOTIFY_SOCKET=${address}`],
    fixtureCommand("fdstore.ts"),
    { port },
  );
  // The socket's inode, read while the app holds fd 3.
  let inode = "";
  await until(() => {
    try {
      inode = /socket:\[(\d+)\]/.exec(fs.readlinkSync(`/proc/${run.child.pid}/fd/3`))?.[1] ?? "";
    } catch { /* not yet exec'd, or gone */ }
    return inode !== "" || run.stdout() !== "";
  });
  await run.exited();
  conn.destroy();
  if (TOOL) {
    assert.match(
      run.stdout(),
      /^error ENOTSUP: Cannot store fds: passing fds .* Node [\d.]+ cannot do without a native addon\. Node 26\.9 and later pass fds over node:ffi/,
    );
    r.run.child.kill("SIGKILL");
    return;
  }
  assert.equal(run.stdout(), "done [true,true,true]\n", run.stderr());
  await until(() => r.messages().length >= 3);
  r.run.child.kill("SIGKILL");
  const [store, bar, remove] = r.messages() as (Datagram & { inodes: number[] })[];
  assert.equal(store.data, "FDSTORE=1\nFDNAME=web");
  assert.deepEqual(store.inodes.map(String), [inode], "the stored fd is the listening socket itself");
  assert.equal(bar.data, "BARRIER=1");
  assert.equal(bar.fds, 1);
  assert.equal(remove.data, "FDSTOREREMOVE=1\nFDNAME=web");
  assert.equal(remove.fds, 0);
  for (const m of [store, bar, remove]) assert.equal(m.pid, run.child.pid);
});

test("storeFds() and barrier() on Node 26 with SOCKET_ACTIVATE_FFI=0: ENOTSUP, saying what lifts it", {
  skip: NODE_FFI ? false : "only a Node with node:ffi has it to turn off",
}, async () => {
  const env = { NOTIFY_SOCKET: "@sa-ffi-off" };
  await withEnv({ SOCKET_ACTIVATE_FFI: "0" }, async () => {
    for (const call of [() => storeFds([0], "x", { env }), () => barrier(100, { env })]) {
      await assert.rejects(call(), (e) =>
        e instanceof ActivationError && e.code === "ENOTSUP" &&
        /Node 26\.9 and later pass fds over node:ffi, unless SOCKET_ACTIVATE_FFI=0/.test(e.message));
    }
  });
});

test("barrier() times out when the receiver keeps the pipe open", {
  skip: TOOL && "Node 22 and 24 cannot pass fds",
}, async () => {
  const dir = tempDir();
  const address = path.join(dir, "hold.sock");
  // A receiver that takes the datagram but never closes the fds it got.
  const hold = start([
    "/usr/bin/python3",
    "-c",
    `
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1]); print("ready", flush=True)
kept = socket.recv_fds(s, 100, 4); time.sleep(10)`,
    address,
  ]);
  await until(() => hold.stdout().startsWith("ready"));
  const t0 = Date.now();
  assert.equal(await barrier(300, { env: { NOTIFY_SOCKET: address } }), false);
  assert.ok(Date.now() - t0 >= 290);
  hold.child.kill("SIGKILL");
});

test(
  "Node loads node:ffi at the first notify(), not at import nor for listenFds() on fds Node marked close-on-exec, " +
    "and prints no warning; SOCKET_ACTIVATE_FFI=0: never",
  {
    skip: RUNTIME !== "node",
  },
  async () => {
    const ffiLoaded = "process.moduleLoadList.includes('NativeModule ffi')";
    // [build, SOCKET_ACTIVATE_FFI, node's flags, whether node:ffi is used]
    const cases: [string, string | undefined, string[], boolean][] = [
      ["node.cjs", undefined, [], NODE_FFI],
      ["node.js", undefined, [], NODE_FFI],
      ["node.cjs", "0", [], false],
      ["node.js", "0", [], false],
    ];
    if (NODE_FFI) {
      cases.push(["node.cjs", undefined, ["--no-experimental-ffi"], false]);
      cases.push([
        "node.cjs",
        undefined,
        ["--permission", "--allow-fs-read=*", "--allow-child-process"],
        false,
      ]);
    }
    for (const [build, off, flags, uses] of cases) {
      // fd 3 is Node's own epoll fd, close-on-exec like every fd Node inherits:
      // /proc/self/fdinfo tells listenFds() so without binding libc, which cost
      // the echo server's cold start on Node 26 about 9 ms of CPU.
      const script = `import(${JSON.stringify(path.join(ROOT, "dist", build))}).then(async (sa) => {
      Object.assign(process.env, { LISTEN_PID: String(process.pid), LISTEN_FDS: "1" });
      const loaded = process.moduleLoadList.length;
      if (sa.listenFds().length !== 1) throw new Error("not activated");
      const more = process.moduleLoadList.slice(loaded);
      if (more.length) throw new Error("listenFds() loaded " + more.join(", "));
      const before = ${ffiLoaded};
      const code = await sa.notify("READY=1", { env: { NOTIFY_SOCKET: "/nonexistent/notify" } }).catch((e) => e.code);
      console.log(JSON.stringify([before, ${ffiLoaded}, code]));
    });`;
      // A file, not -e: -e loads node:module, which listenFds() must not load either.
      const file = path.join(tempDir(), "check.mjs");
      fs.writeFileSync(file, script);
      const run = start([process.execPath, ...flags, file], { SOCKET_ACTIVATE_FFI: off });
      assert.equal(await run.exited(), 0, run.stderr());
      const what = `${build} ${flags.join(" ")}${off ? " with SOCKET_ACTIVATE_FFI=0" : ""}`;
      assert.equal(run.stdout(), `${JSON.stringify([false, uses, "ECONNREFUSED"])}\n`, what);
      // Node's own SecurityWarning for --allow-child-process is the flag's, not the package's.
      assert.equal(run.stderr().replace(/^.*(SecurityWarning|--trace-warnings).*\n/gm, ""), "", what);
    }
  },
);

test(
  NODE_FFI
    ? "Node 26 as a non-root user: 100 datagrams, all from Node's own PID (NotifyAccess=main will do)"
    : "Node as a non-root user: the datagram comes from systemd-notify's PID (NotifyAccess=all needed)",
  { skip: RUNTIME !== "node" },
  async () => {
    const address = `@sa-nonroot-${process.pid}-${Date.now()}`;
    const r = await receiver(address);
    // The package in a directory nobody may read (CI clones into a 0700 temp dir).
    const dir = tempDir();
    fs.cpSync(path.join(ROOT, "dist"), path.join(dir, "pkg"), { recursive: true });
    spawnSync("chmod", ["-R", "a+rX", dir]);
    const n = NODE_FFI ? 100 : 1;
    const script = `const sa = require(${JSON.stringify(path.join(dir, "pkg", "node.cjs"))});
      (async () => { for (let i = 0; i < ${n}; i++) await sa.status("n=" + i); })()
        .catch((e) => { console.log(e.code, e.message); process.exit(1); });`;
    // setpriv execs in place, so the PID is node's own.
    const run = start(
      [
        "/usr/bin/setpriv",
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        process.execPath,
        "-e",
        script,
      ],
      { NOTIFY_SOCKET: address },
      // Node looks for a package.json from the working directory up (for -e):
      // one nobody may read (the 0700 clone) fails the run with EACCES.
      dir,
    );
    assert.equal(await run.exited(), 0, run.stdout() + run.stderr());
    assert.equal(run.stderr(), "", "no ExperimentalWarning in the service's log");
    await until(() => r.messages().filter((m) => m.data.startsWith("STATUS=")).length >= n);
    r.run.child.kill("SIGKILL");
    const states = r.messages().filter((m) => m.data !== "BARRIER=1");
    assert.deepEqual(
      states.map((m) => m.data.replace(/\n$/, "")),
      Array.from({ length: n }, (_, i) => `STATUS=n=${i}`),
    );
    for (const m of states) {
      if (NODE_FFI) assert.equal(m.pid, run.child.pid, JSON.stringify(m));
      else assert.ok(m.pid > 0 && m.pid !== run.child.pid, `sender ${m.pid}, node ${run.child.pid}`);
    }
  },
);

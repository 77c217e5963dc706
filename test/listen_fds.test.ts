import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { ActivationError, listenFds } from "../mod.ts";
import * as fs from "node:fs";
import { NODE_FFI, RUNTIME } from "./_util.ts";
import { nodeFfi } from "../runtimes/node/ffi_gate.ts";
import { nodeLibc } from "../runtimes/node/ffi_libc.ts";

const VARS = ["LISTEN_PID", "LISTEN_PIDFDID", "LISTEN_FDS", "LISTEN_FDNAMES"];

function thrown(f: () => unknown): ActivationError {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof ActivationError, `not an ActivationError: ${e}`);
    return e;
  }
  assert.fail("did not throw");
}

test("listenFds() returns the fds with their names", () => {
  const env = { LISTEN_PID: "7", LISTEN_FDS: "2", LISTEN_FDNAMES: "web:admin" };
  assert.deepEqual(listenFds({ env, pid: 7 }), [{ fd: 3, name: "web" }, { fd: 4, name: "admin" }]);
});

test("listenFds() names every fd unknown when LISTEN_FDNAMES is unset", () => {
  assert.deepEqual(listenFds({ env: { LISTEN_PID: "7", LISTEN_FDS: "1" }, pid: 7 }), [{
    fd: 3,
    name: "unknown",
  }]);
});

test("listenFds() is not activated when LISTEN_PID names another process", () => {
  assert.deepEqual(listenFds({ env: { LISTEN_PID: "8", LISTEN_FDS: "1" }, pid: 7, ppid: 1 }), []);
});

test("listenFds() unsets all four variables on every path by default", () => {
  const paths: Record<string, string>[] = [
    { LISTEN_PID: "7", LISTEN_FDS: "1", LISTEN_FDNAMES: "a", LISTEN_PIDFDID: "5" }, // success (pidfd skipped)
    { LISTEN_PID: "8", LISTEN_FDS: "1", LISTEN_FDNAMES: "a", LISTEN_PIDFDID: "5" }, // mismatch
    { LISTEN_PID: "7", LISTEN_FDS: "x", LISTEN_FDNAMES: "a", LISTEN_PIDFDID: "5" }, // EINVAL
    { LISTEN_PID: "7", LISTEN_FDS: "1", LISTEN_FDNAMES: "a:b", LISTEN_PIDFDID: "5" }, // name count
    { LISTEN_FDNAMES: "a\\", LISTEN_PIDFDID: "5" }, // names that do not split
  ];
  for (const env of paths) {
    const e: Record<string, string | undefined> = { ...env, OTHER: "kept" };
    try {
      listenFds({ env: e, pid: 7, ppid: 1 });
    } catch { /* the error paths unset too */ }
    for (const v of VARS) assert.equal(e[v], undefined, `${v} left set for ${JSON.stringify(env)}`);
    assert.equal(e.OTHER, "kept");
  }
});

test("listenFds() keeps the variables with unsetEnv: false", () => {
  const env = { LISTEN_PID: "7", LISTEN_FDS: "1", LISTEN_FDNAMES: "a" };
  listenFds({ env, pid: 7, unsetEnv: false });
  assert.deepEqual(env, { LISTEN_PID: "7", LISTEN_FDS: "1", LISTEN_FDNAMES: "a" });
});

test("listenFds() unsets the real process environment by default", () => {
  process.env.LISTEN_PID = "1";
  process.env.LISTEN_FDS = "1";
  assert.deepEqual(listenFds(), []);
  assert.equal(process.env.LISTEN_PID, undefined);
  assert.equal(process.env.LISTEN_FDS, undefined);
});

test("listenFds() errors name the variable and quote the value", () => {
  let e = thrown(() => listenFds({ env: { LISTEN_PID: "7", LISTEN_FDS: "2 " }, pid: 7 }));
  assert.equal(e.code, "EINVAL");
  assert.match(e.message, /^Cannot parse LISTEN_FDS="2 ": /);
  e = thrown(() => listenFds({ env: { LISTEN_PID: "-5", LISTEN_FDS: "1" }, pid: 7 }));
  assert.equal(e.code, "ERANGE");
  assert.match(e.message, /LISTEN_PID="-5".*out of range/);
  e = thrown(() => listenFds({ env: { LISTEN_PID: "7", LISTEN_FDS: "0" }, pid: 7 }));
  assert.equal(e.code, "EINVAL");
  assert.match(e.message, /LISTEN_FDS="0"/);
  e = thrown(() => listenFds({ env: { LISTEN_PID: "7", LISTEN_FDS: "2", LISTEN_FDNAMES: "a::b" }, pid: 7 }));
  assert.equal(e.code, "EINVAL");
  assert.match(e.message, /LISTEN_FDNAMES="a::b" has 3 name\(s\) but LISTEN_FDS="2"/);
  e = thrown(() => listenFds({ env: { LISTEN_PID: "7", LISTEN_FDS: "100000" }, pid: 7 }));
  assert.equal(e.code, "EBADF");
  assert.match(e.message, /fd \d+ is not open/);
});

test("listenFds() explains a LISTEN_PID that names the parent (a wrapper took the sockets)", () => {
  const e = thrown(() => listenFds({ env: { LISTEN_PID: "6", LISTEN_FDS: "1" }, pid: 7, ppid: 6 }));
  assert.equal(e.code, "ESRCH");
  assert.match(e.message, /LISTEN_PID="6" is this process's parent/);
  assert.match(e.message, /ExecStart=/);
});

test("listenFds() rejects a malformed LISTEN_PIDFDID as EINVAL or ERANGE", () => {
  for (
    const [v, code] of [["x", "EINVAL"], ["1 ", "EINVAL"], ["-1", "ERANGE"], [
      "18446744073709551616",
      "ERANGE",
    ]]
  ) {
    const e = thrown(() =>
      listenFds({ env: { LISTEN_PID: "7", LISTEN_PIDFDID: v, LISTEN_FDS: "1" }, pid: 7 })
    );
    assert.equal(e.code, code, v);
    assert.match(e.message, new RegExp(`LISTEN_PIDFDID="${v}"`));
  }
});

// The pidfs inode id of this very process, from outside (python's pidfd_open).
function ownPidfdId(): bigint | undefined {
  const r = spawnSync("/usr/bin/python3", [
    "-c",
    `import os; print(os.fstat(os.pidfd_open(${process.pid})).st_ino)`,
  ]);
  return r.status === 0 ? BigInt(String(r.stdout).trim()) : undefined;
}

test("listenFds() checks LISTEN_PIDFDID where the runtime can learn its pidfd id", () => {
  const id = ownPidfdId();
  const base = { LISTEN_PID: String(process.pid), LISTEN_FDS: "1" };
  assert.ok(id !== undefined);
  assert.deepEqual(listenFds({ env: { ...base, LISTEN_PIDFDID: String(id) } }).length, 1);
  const other = listenFds({ env: { ...base, LISTEN_PIDFDID: String(id! + 1n) } });
  // A mismatch is "not for this process" (0 fds), as a libsystemd that knows the
  // variable answers it (the oracle's libsystemd 252 predates
  // LISTEN_PIDFDID). Node 22 and 24 cannot open a pidfd, so they skip the
  // check as libsystemd does where pidfds are unavailable; Node 26 opens one
  // over node:ffi.
  assert.equal(other.length, RUNTIME === "node" && !NODE_FFI ? 1 : 0);
});

test(
  "listenFds() sets FD_CLOEXEC on an inherited fd that lacks it, through fcntl (Node 26)",
  { skip: !NODE_FFI && "Node 26 only: Node 22 and 24 have no fcntl; Deno's case is test/cloexec.test.ts" },
  () => {
    const libc = nodeLibc(nodeFfi()!)!;
    const fd = fs.openSync("/dev/null", "r");
    const flags = () =>
      parseInt(/^flags:\s*(\d+)/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, "latin1"))![1], 8);
    try {
      assert.equal(libc.fcntl(fd, 2, /* F_SETFD */ 0), 0);
      assert.equal(flags() & 0o2000000, 0, "FD_CLOEXEC still set");
      // fds 3 up to it are this process's own (already close-on-exec): listenFds marks each.
      const got = listenFds({ env: { LISTEN_PID: String(process.pid), LISTEN_FDS: String(fd - 2) } });
      assert.equal(got.length, fd - 2);
      assert.notEqual(flags() & 0o2000000, 0, "listenFds() left the fd inheritable");
    } finally {
      fs.closeSync(fd);
    }
  },
);

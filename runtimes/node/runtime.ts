// The Node shim's runtime contract. Bun reuses most of it (its node:fs and
// process work the same) and adds FFI.
import type * as NodeFs from "node:fs";
import { type FdState, fdStateFromFdinfo, type Runtime, type TcpHandle } from "../../src/_runtime.ts";
import { ActivationError } from "../../src/errors.ts";
import type { DgramAdapter } from "../../src/_net.ts";
import { refused } from "../../src/notify.ts";
import { nodeFfi } from "./ffi_gate.ts";

// listenFds() is synchronous, and on Node 26 needs fcntl (close-on-exec) and
// pidfd_open (LISTEN_PIDFDID) before it returns. A static import of
// ./ffi_libc.ts would load two more files at every import on Node 22 and 24
// too (2 to 3 ms measured on a loaded machine), so it is required on first
// need, and only where node:ffi is there, which means Node 26, where
// require() takes an ES module synchronously. The built files are flat in
// dist/ and this one has a fixed name there (tsup.config.ts defines
// __FFI_LIBC__ and, in CommonJS, import.meta.url); where it cannot load (a
// bundle without it), Node 22's and 24's paths stay.
declare const __FFI_LIBC__: string | undefined;
type FfiLibc = typeof import("./ffi_libc.ts");
let ffiLibcModule: FfiLibc | null | undefined;

/** Calls f with the binding and node:ffi where both are there, else undefined. */
function withFfiLibc<T>(f: (m: FfiLibc, ffi: NonNullable<ReturnType<typeof nodeFfi>>) => T): T | undefined {
  const ffi = nodeFfi(); // on every call: SOCKET_ACTIVATE_FFI=0 may be set at any time
  if (ffi === undefined) return undefined;
  if (ffiLibcModule === undefined) {
    try {
      const { createRequire } = process.getBuiltinModule("node:module") as typeof import("node:module");
      ffiLibcModule = createRequire(import.meta.url)(
        typeof __FFI_LIBC__ === "string" ? __FFI_LIBC__ : "./ffi_libc.ts",
      ) as FfiLibc;
    } catch {
      ffiLibcModule = null;
    }
  }
  return ffiLibcModule === null ? undefined : f(ffiLibcModule, ffi);
}

// Whether this Node may have node:ffi (26.1 and later), told by its major
// version without loading anything: node:module's isBuiltin() would load
// node:module and, on Node 22, the ES module loader. Whether it really has it
// is still asked of node:ffi itself (ffi_gate.ts), when it is needed.
const ffiLine = () => Number(process.versions.node.split(".", 1)[0]) >= 26;

// Through getBuiltinModule rather than a static import: mod.ts imports this
// file in every runtime, and a static node:fs import costs Deno about 14 ms of
// start-up even when the Deno shim is the one in use.
let fsModule: typeof NodeFs | undefined;
const fsm = () => (fsModule ??= process.getBuiltinModule("node:fs") as typeof NodeFs);

function errCode(e: unknown): string | undefined {
  return (e as { code?: string })?.code;
}

export function readLink(path: string): string | undefined {
  try {
    return fsm().readlinkSync(path);
  } catch (e) {
    if (errCode(e) === "ENOENT" || errCode(e) === "ENOTDIR") return undefined;
    throw e;
  }
}

export function readText(path: string): string | undefined {
  try {
    return fsm().readFileSync(path, "latin1");
  } catch (e) {
    if (errCode(e) === "ENOENT" || errCode(e) === "ENOTDIR") return undefined;
    throw e;
  }
}

export function statKind(path: string): "fifo" | "file" | "other" | undefined {
  try {
    const st = fsm().statSync(path);
    return st.isFIFO()
      ? "fifo"
      : st.isFile() || st.isCharacterDevice() || st.isBlockDevice()
      ? "file"
      : "other";
  } catch {
    return undefined;
  }
}

/** F_GETFD through /proc/self/fdinfo: Node has no fcntl. */
export function fdStateFromProc(fd: number): FdState {
  return fdStateFromFdinfo(readText(`/proc/self/fdinfo/${fd}`));
}

export function writeAll(fd: number, text: string): void {
  const bytes = new TextEncoder().encode(text);
  let off = 0;
  while (off < bytes.length) {
    try {
      off += fsm().writeSync(fd, bytes, off);
    } catch (e) {
      if (errCode(e) !== "EAGAIN") throw e;
    }
  }
}

// process.binding("tcp_wrap") is deprecated in documentation only
// (DEP0111) and is what node:net itself is built on; where it is missing or
// changes shape, openTcp returns undefined and the /proc tables answer.
// deno-lint-ignore no-explicit-any
type Any = any;

function openTcp(fd: number): TcpHandle | undefined {
  let h: Any;
  try {
    const { TCP, constants } = (process as Any).binding("tcp_wrap");
    h = new TCP(constants.SOCKET);
    if (h.open(fd) !== 0) return undefined;
  } catch {
    return undefined;
  }
  const local: Any = {};
  const peer: Any = {};
  if (h.getsockname(local) !== 0 || (local.family !== "IPv4" && local.family !== "IPv6")) {
    // Not an IP socket (a unix one, say): let go of the handle without
    // closing it, which would close the fd. It never started polling, so the
    // handle node:net opens on the same fd later does not clash with it.
    return undefined;
  }
  const connected = h.getpeername(peer) === 0;
  // getsockname cannot tell TCP from UDP. A listener is told apart by
  // listen() itself, called on this handle just before node:net takes it
  // (node_api/net.ts): UDP refuses it, and the fd stays open for the error. A
  // connected socket (Accept=yes) is looked up in the UDP table instead.
  if (connected) {
    const inode = /^socket:\[(\d+)\]$/.exec(readLink(`/proc/self/fd/${fd}`) ?? "")?.[1];
    const udp = readText(local.family === "IPv4" ? "/proc/net/udp" : "/proc/net/udp6") ?? "";
    if (inode === undefined || new RegExp(`\\s${inode}\\s`).test(udp)) return undefined;
  }
  return {
    family: local.family === "IPv4" ? "ipv4" : "ipv6",
    address: local.address,
    port: local.port,
    connected,
    handle: h,
  };
}

/**
 * sd_notify: over node:ffi where Node has it (26.9 and later, ./ffi.ts), as
 * Deno and Bun send it; else through systemd-notify.
 */
function notifySend(path: Uint8Array, state: string, value: string): Promise<void> {
  const ffi = nodeFfi();
  if (ffi === undefined) return notifyWithTool(state, value);
  return import("./ffi.ts").then((m) => {
    const sent = m.notifyVia(ffi, path, state);
    if (sent === undefined) return notifyWithTool(state, value);
    if (!sent) throw refused(value);
  });
}

/**
 * Node 22 and 24 have no unix datagram socket (nodejs/node#61933, closed as
 * stale) and a native addon would need a build at install time: systemd-notify sends it.
 * As root its datagram carries the caller's PID; otherwise its own, so the
 * unit needs NotifyAccess=all.
 *
 * Without --no-block, systemd-notify follows the state with BARRIER=1 and
 * waits (5 s at most) until the receiver closes the fd sent with it, which
 * systemd does once it has handled everything before it. The non-root case
 * needs that wait: systemd finds a datagram's unit by the sender's cgroup,
 * read from /proc when it gets to the datagram, and a systemd-notify that has
 * already exited belongs to no unit ("Cannot find unit for notify message of
 * PID N, ignoring": 11 to 17 datagrams of 600 with --no-block,
 * test/systemd_notify.test.ts).
 */
export async function notifyWithTool(state: string, value: string): Promise<void> {
  const args = state.split("\n").filter((l) => l !== "");
  // `systemctl stop` sends SIGTERM to every process in the unit's cgroup, and
  // goes on reading the cgroup until no new process shows up: the
  // systemd-notify a SIGTERM handler starts for STOPPING=1 often gets it too
  // (a sixth to a third of the stops, test/systemd_notify.test.ts). Another
  // try starts after that pass; every sd_notify state means the same twice.
  for (let attempt = 1;; attempt++) {
    const { code, signal, err } = await runNotify(args, value);
    if (code === 0) return;
    if (signal !== null && attempt < 3) continue;
    if (/barrier/i.test(err) && /timed out/i.test(err)) {
      throw new ActivationError(
        "ETIMEDOUT",
        `systemd-notify sent "${args.join(" ")}" to NOTIFY_SOCKET="${value}", but the receiver did not ` +
          "confirm it within 5 s: it has not closed the fd sent after it with BARRIER=1, which systemd closes " +
          "as soon as it has read the state. If NOTIFY_SOCKET is systemd's, systemd is stalled; any other " +
          `receiver must read the datagrams and close the fds they carry (systemd-notify: ${err})`,
      );
    }
    if (signal !== null) {
      throw new ActivationError(
        "EINTR",
        `Cannot notify NOTIFY_SOCKET="${value}" of "${args.join(" ")}": systemd-notify was killed by ` +
          `${signal} ${attempt} times in a row, so it may not have been sent. Something signals this ` +
          "process's group or cgroup over and over; call again once it stops",
      );
    }
    throw new ActivationError(
      "ECONNREFUSED",
      `systemd-notify could not send to NOTIFY_SOCKET="${value}" (exit ${code})` +
        (err === "" ? "" : `: ${err}`),
    );
  }
}

function runNotify(
  args: string[],
  value: string,
): Promise<{ code: number | null; signal: string | null; err: string }> {
  return new Promise((resolve, reject) => {
    const cp = process.getBuiltinModule("node:child_process") as typeof import("node:child_process");
    const child = cp.spawn("systemd-notify", args, {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, NOTIFY_SOCKET: value },
    });
    let err = "";
    child.stderr!.on("data", (d) => (err += d));
    child.on("error", (e: NodeJS.ErrnoException) => {
      const PATH = process.env.PATH ?? "";
      reject(
        e.code === "ENOENT"
          ? new ActivationError(
            "ENOENT",
            `Cannot notify NOTIFY_SOCKET="${value}": Node ${process.versions.node} has no unix datagram ` +
              `socket here, so systemd-notify sends for it, and there is no systemd-notify on PATH="${PATH}": ` +
              "install it (Debian package systemd) or add its directory to PATH. Node 26.9 and later send it " +
              "themselves over node:ffi, unless SOCKET_ACTIVATE_FFI=0, --no-experimental-ffi, or --permission " +
              "without --allow-ffi turns that off",
          )
          : e,
      );
    });
    child.on("close", (code, signal) => resolve({ code, signal, err: err.trim() }));
  });
}

/** The contract as Node fulfils it. */
export const nodeRuntime: Runtime = {
  name: "node",
  pid: () => process.pid,
  ppid: () => process.ppid,
  getEnv: (k) => process.env[k],
  deleteEnv: (k) => {
    delete process.env[k];
  },
  readLink,
  readText,
  statKind,
  files: () => import("../node_api/files.ts").then((m) => m.loadFiles()),
  // Node marks every inherited fd FD_CLOEXEC at start-up (test/cloexec.test.ts
  // checks that children hold none). Node 22 and 24 have no fcntl: there this
  // only tells a closed fd, by readlink, which costs a tenth of the first read
  // of /proc/self/fdinfo. Node 26 reads the flag from /proc/self/fdinfo and
  // sets it with fcntl over node:ffi, as libsystemd's fd_cloexec(), only on an
  // fd that lacks it: binding libc for an fd Node already marked cost the echo
  // server's cold start on Node 26 about 9 ms of CPU (node:ffi, the binding's files, two dlopens).
  setCloexec: (fd) => {
    if (!ffiLine()) return readLink(`/proc/self/fd/${fd}`) === undefined ? "closed" : "cloexec";
    const state = fdStateFromProc(fd);
    if (state === "cloexec" || state === "closed") return state;
    return withFfiLibc((m, ffi) => m.setCloexecNode(ffi, fd)) ?? state;
  },
  fdState: fdStateFromProc,
  sockInfo: () => undefined,
  openTcp,
  // pidfd_open over node:ffi on Node 26; without node:ffi (Node 22, 24) the
  // LISTEN_PIDFDID check is skipped, as libsystemd skips it where pidfds are
  // unavailable.
  pidfdId: () => withFfiLibc((m, ffi) => m.pidfdIdNode(ffi)),
  args: () => process.argv.slice(2),
  write: (stream, text) => writeAll(stream === "stdout" ? 1 : 2, text),
  exit: (code) => process.exit(code),
  version: () => `node ${process.versions.node}`,
  notifySend,
  // SCM_RIGHTS needs sendmsg, which Node 22 and 24 offer only to child-process IPC.
  fdPassing: () => {
    const ffi = nodeFfi();
    return ffi === undefined ? undefined : import("./ffi.ts").then((m) => m.fdPassingNode(ffi));
  },
  monotonicUsec: () => process.hrtime.bigint() / 1000n,
  unrefTimer: (timer) => (timer as { unref?: () => void }).unref?.(),
  kill: (pid, signal) => {
    try {
      return process.kill(pid, signal);
    } catch {
      return false;
    }
  },
  onSignal: (signal, fn) => {
    process.on(signal, fn);
    return () => process.off(signal, fn);
  },
  onDefaultSignal: (signal, fn) => {
    // First in line, so that a program's process.once handler, added before
    // or after, is still counted when this one runs.
    const h = () => {
      if (process.listenerCount(signal) === 1) fn();
    };
    process.prependListener(signal, h);
    return () => process.off(signal, h);
  },
  // Loaded on demand: Bun reuses this object and never needs node:net.
  net: () => import("../node_api/net.ts").then((m) => m.nodeNet),
  dgram: () =>
    import("../node_api/dgram.ts").then((m): DgramAdapter => {
      // A unix datagram socket over node:ffi (Node 26); UDP through node:dgram.
      const ffi = nodeFfi();
      if (ffi === undefined) return m.nodeDgram;
      return {
        ...m.nodeDgram,
        bindFd: (fd, family, onMessage) =>
          family !== "unix"
            ? m.nodeDgram.bindFd(fd, family, onMessage)
            : import("./ffi.ts").then((f) =>
              f.unixDgram(ffi, fd, onMessage) ?? m.nodeDgram.bindFd(fd, family, onMessage)
            ),
      };
    }),
  http: () => import("../node_api/http.ts").then((m) => m.nodeHttp),
  launcher: () => import("./launcher.ts").then((m) => m.nodeLauncher),
  fifoReadable: (fd) => {
    // A pipe handle on the fd (libuv polls it) rather than fs.createReadStream:
    // fs reads block a thread-pool thread on an empty FIFO, and Node's exit
    // then waits for that thread forever, since systemd opens the FIFO
    // read-write and no read ever ends.
    const net = process.getBuiltinModule("node:net") as typeof import("node:net");
    const stream = process.getBuiltinModule("node:stream") as typeof import("node:stream");
    const socket = new net.Socket({ fd, readable: true, writable: false });
    return Promise.resolve(stream.Readable.toWeb(socket) as unknown as ReadableStream<Uint8Array>);
  },
};

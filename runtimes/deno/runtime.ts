// The Deno shim's runtime contract. Deno cannot fstat an inherited fd (its
// fs works on resource ids: fstatSync(3) is EBADF), so fds are read through
// FFI where --allow-ffi is granted and through /proc otherwise; /proc needs
// -A, since Deno refuses explicit read grants on /proc.
import { ActivationError } from "../../src/errors.ts";
import { type FdState, fdStateFromFdinfo, type Runtime } from "../../src/_runtime.ts";
import type { NetAdapter } from "../../src/_net.ts";
import { refused } from "../../src/notify.ts";
import { parsePid, safeAtoi } from "../../src/_parse.ts";
import {
  fdKindVia,
  fdPassingVia,
  fdStateVia,
  LIBC,
  type Libc,
  makeLibc,
  monotonicUsecVia,
  pidfdIdVia,
  readLinkVia,
  readTextVia,
  sendWithFdsVia,
  setCloexecVia,
  sockInfoVia,
  type SymbolDef,
} from "../ffi/libc.ts";
import { isNotCapable, makeDenoNet, takeOverListener } from "./net.ts";

// deno-lint-ignore no-explicit-any
type Any = any;
const D = (): Any => (globalThis as Any).Deno;

let libc: Libc | null | undefined;
let denoNet: NetAdapter | undefined;

/** Whether the process may use FFI (granted, not prompting). */
export function ffiGranted(): boolean {
  return granted({ name: "ffi" });
}

export function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  if (!ffiGranted()) return (libc = null);
  try {
    libc = makeLibc(
      (defs: Record<string, SymbolDef>) => D().dlopen(LIBC, defs).symbols,
      true,
      D().build.arch,
      (buf) => BigInt(D().UnsafePointer.value(D().UnsafePointer.of(buf))),
      true, // dup3 and epoll_ctl: an activated listen() takes the fd over (deno/net.ts)
    );
    libc.fcntl(0, 1, 0); // bind now: a missing libc.so.6 (musl) fails here, not later
  } catch {
    libc = null;
  }
  return libc;
}

function granted(desc: Record<string, string>): boolean {
  try {
    return D().permissions.querySync(desc).state === "granted";
  } catch {
    return false;
  }
}

/**
 * Marks the passed fds close-on-exec when the package is imported, where
 * that needs no prompt: Deno, unlike Node, leaves inherited fds without
 * FD_CLOEXEC, so a child process started before the first listenFds() (the
 * first listen()) would hold the listening socket. Only where --allow-env
 * (for LISTEN_PID and LISTEN_FDS) and --allow-ffi are already granted, and
 * LISTEN_PID names this process; otherwise nothing is touched and
 * listenFds() does it as before, erring where the environment is wrong.
 */
export function cloexecAtImport(): void {
  // What a process that was not activated pays: this query (about 0.45 ms,
  // the first permission query of a Deno process) and one env read.
  if (!granted({ name: "env", variable: "LISTEN_PID" })) return;
  const pidText = D().env.get("LISTEN_PID");
  if (pidText === undefined) return;
  const pid = parsePid(pidText);
  if ("error" in pid || pid.value !== BigInt(D().pid)) return;
  if (!granted({ name: "env", variable: "LISTEN_FDS" })) return;
  const fdsText = D().env.get("LISTEN_FDS");
  const n = fdsText === undefined ? undefined : safeAtoi(fdsText);
  if (n === undefined || "error" in n || n.value <= 0n) return;
  // The libc binding (Deno.dlopen) that listenFds() makes anyway: moved, not added.
  const c = loadLibc();
  if (c === null) return;
  // Up to the first fd that is not open: listenFds() reports that one.
  for (let fd = 3; fd < 3 + Number(n.value); fd++) if (setCloexecVia(c, fd) === "closed") break;
}

function denied(what: string, flag: string): ActivationError {
  return new ActivationError("EPERM", `Deno may not ${what}: run it with ${flag}`);
}

// Deno refuses /proc to its file API even under --allow-read (only -A grants
// it); with --allow-ffi the same read goes through libc. Without either, the
// flag to add is --allow-ffi: the README's permissions already hold the rest.
function procDenied(path: string): ActivationError {
  return denied(`read ${path}`, "--allow-ffi (Deno grants /proc to its own file API only with -A)");
}

function readLink(path: string): string | undefined {
  try {
    return D().readLinkSync(path);
  } catch (e) {
    if (e instanceof D().errors.NotFound) return undefined;
    if (!isNotCapable(e)) throw e;
  }
  const c = loadLibc();
  if (!c) throw procDenied(path);
  return readLinkVia(c, path);
}

function readText(path: string): string | undefined {
  try {
    const bytes: Uint8Array = D().readFileSync(path);
    let s = "";
    for (let i = 0; i < bytes.length; i += 8192) {
      s += String.fromCharCode(...bytes.subarray(i, i + 8192));
    }
    return s;
  } catch (e) {
    if (e instanceof D().errors.NotFound) return undefined;
    if (!isNotCapable(e)) throw e;
  }
  const c = loadLibc();
  if (!c) throw procDenied(path);
  return readTextVia(c, path);
}

function fdStateFromProc(fd: number): FdState {
  return fdStateFromFdinfo(readText(`/proc/self/fdinfo/${fd}`));
}

function writeAll(rid: Any, text: string): void {
  const bytes = new TextEncoder().encode(text);
  let off = 0;
  while (off < bytes.length) off += rid.writeSync(bytes.subarray(off));
}

/** The contract as Deno fulfils it. */
export const denoRuntime: Runtime = {
  name: "deno",
  pid: () => D().pid,
  ppid: () => D().ppid,
  getEnv: (k) => {
    try {
      return D().env.get(k);
    } catch (e) {
      if (isNotCapable(e)) throw denied(`read ${k}`, `--allow-env (or --allow-env=${k},...)`);
      throw e;
    }
  },
  deleteEnv: (k) => {
    try {
      D().env.delete(k);
    } catch (e) {
      if (isNotCapable(e)) throw denied(`unset ${k}`, `--allow-env (or --allow-env=${k},...)`);
      throw e;
    }
  },
  readLink,
  readText,
  statKind: (path) => {
    try {
      const st = D().statSync(path);
      return st.isFifo ? "fifo" : st.isFile || st.isCharDevice || st.isBlockDevice ? "file" : "other";
    } catch {
      return undefined;
    }
  },
  files: () => import("../node_api/files.ts").then((m) => m.loadFiles()),
  setCloexec: (fd) => {
    const c = loadLibc();
    if (c) return setCloexecVia(c, fd);
    // Without FFI nothing in Deno can set FD_CLOEXEC (children started with
    // Deno.Command then inherit the socket); with -A at least tell a closed fd
    // (Deno refuses /proc even under --allow-read, granting it only with -A).
    try {
      return fdStateFromProc(fd) === "closed" ? "closed" : "unknown";
    } catch (e) {
      if (e instanceof ActivationError && e.code === "EPERM") return "unknown";
      throw e;
    }
  },
  fdState: (fd) => {
    const c = loadLibc();
    return c ? fdStateVia(c, fd) : fdStateFromProc(fd);
  },
  sockInfo: (fd) => {
    const c = loadLibc();
    return c ? sockInfoVia(c, fd) : undefined;
  },
  // Deno's fstatSync works on resource ids, not fds: fstat(2) over FFI.
  fdKind: (fd) => {
    const c = loadLibc();
    return c ? fdKindVia(c, fd, D().build.arch) : undefined;
  },
  pidfdId: () => {
    const c = loadLibc();
    return c ? pidfdIdVia(c, D().pid, D().build.arch) : undefined;
  },
  args: () => D().args,
  write: (stream, text) => writeAll(stream === "stdout" ? D().stdout : D().stderr, text),
  exit: (code) => D().exit(code) as never,
  version: () => `deno ${D().version.deno}`,
  notifySend: (path, state, value) => {
    const c = loadLibc();
    if (!c) {
      // Deno.listenDatagram({ transport: "unixpacket" }) could send too, but
      // needs --unstable-net; FFI is what marks fds close-on-exec as well.
      return Promise.reject(denied(`send to NOTIFY_SOCKET="${value}"`, "--allow-ffi"));
    }
    if (!sendWithFdsVia(c, path, new TextEncoder().encode(state), [])) {
      return Promise.reject(refused(value));
    }
    return Promise.resolve();
  },
  fdPassing: () => {
    const c = loadLibc();
    return c ? fdPassingVia(c) : undefined;
  },
  monotonicUsec: () => {
    const c = loadLibc();
    if (!c) throw denied("read CLOCK_MONOTONIC for MONOTONIC_USEC", "--allow-ffi");
    return monotonicUsecVia(c);
  },
  unrefTimer: (timer) => D().unrefTimer(timer),
  kill: (pid, signal) => {
    try {
      D().kill(pid, signal);
      return true;
    } catch {
      return false;
    }
  },
  onSignal: (signal, fn) => {
    D().addSignalListener(signal, fn);
    return () => D().removeSignalListener(signal, fn);
  },
  onDefaultSignal: (signal, fn) => {
    // process.on and process.once, which programs use alike in every
    // runtime, are what can be counted; Deno.addSignalListener cannot.
    const p = (globalThis as unknown as { process: typeof import("node:process") }).process;
    const h = () => {
      if (p.listenerCount(signal) === 1) fn();
    };
    // Deno runs each process.on listener as a signal listener of its own, in
    // the order added, whatever prependListener says: the program's that
    // exist already are put back behind this one, so that a once handler is
    // still counted when this one runs.
    const prior = p.rawListeners(signal) as (() => void)[];
    for (const l of prior) p.removeListener(signal, l);
    p.on(signal, h);
    for (const l of prior) p.on(signal, l);
    return () => p.off(signal, h);
  },
  net: () => Promise.resolve(denoNet ??= makeDenoNet(loadLibc)),
  dgram: () => import("./dgram.ts").then((m) => m.denoDgram),
  http: () => import("../node_api/http.ts").then((m) => m.nodeHttp),
  // Deno's own HTTP server on the fd (about 3.5 times the requests/s of
  // serve() over node:http in Deno: docs/benchmarks.md, "HTTP"), loaded only
  // when an activated serve() asks for it; null (node:http then) where an
  // internal is missing.
  serveFast: (fd, handler, options) =>
    import("./http_fast.ts").then((m) =>
      m.serveFast(fd, handler, options, (tls) => takeOverListener(fd, loadLibc(), tls))
    ),
  launcher: () => import("../ffi/launcher.ts").then((m) => m.ffiLauncher("deno")),
  fifoReadable: (fd) => import("./dgram.ts").then((m) => m.fifoReadable(fd)),
};

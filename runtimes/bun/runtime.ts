// The Bun shim's runtime contract. bun:ffi (about 0.5 ms to load) answers
// fcntl, readlink and the socket's own getsockopt/getsockname in microseconds,
// where Bun's node:fs costs about 1.4 ms just to load and the /proc TCP
// tables milliseconds to read: node:fs is used only where FFI is missing or
// for the rare non-socket fd.
import type { Runtime } from "../../src/_runtime.ts";
import { refused } from "../../src/notify.ts";
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
  sendWithFdsVia,
  setCloexecVia,
  sockInfoVia,
  type SymbolDef,
  writeAllVia,
} from "../ffi/libc.ts";
import { bunNet } from "./net.ts";
import { fdStateFromProc, nodeRuntime } from "../node/runtime.ts";

// deno-lint-ignore no-explicit-any
type Any = any;

let libc: Libc | null | undefined;

function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  try {
    // getBuiltinModule, not import(): listenFds() stays synchronous.
    const ffi = (process as Any).getBuiltinModule?.("bun:ffi") ?? null;
    if (ffi === null) return (libc = null);
    const open = (defs: Record<string, SymbolDef>) => {
      const symbols: Record<string, { args: string[]; returns: string }> = {};
      for (const [name, def] of Object.entries(defs)) {
        symbols[name] = {
          args: def.parameters.map((p) => (p === "buffer" ? "ptr" : p === "usize" ? "u64" : p)),
          returns: def.result === "isize" ? "i64" : def.result,
        };
      }
      return ffi.dlopen(LIBC, symbols).symbols;
    };
    libc = makeLibc(open, false, process.arch, (buf) => BigInt(ffi.ptr(buf)));
    libc.fcntl(0, 1, 0); // bind now: a missing libc.so.6 (musl) fails here, not later
  } catch {
    libc = null; // no libc.so.6 (musl) or no FFI: node:fs and /proc instead
  }
  return libc;
}

/** The contract as Bun fulfils it. */
export const bunRuntime: Runtime = {
  ...nodeRuntime,
  name: "bun",
  openTcp: undefined, // Bun answers through FFI instead
  readLink: (path) => {
    const c = loadLibc();
    return c ? readLinkVia(c, path) : nodeRuntime.readLink(path);
  },
  // Bun, unlike Node, leaves inherited fds without FD_CLOEXEC at start-up.
  setCloexec: (fd) => {
    const c = loadLibc();
    return c ? setCloexecVia(c, fd) : fdStateFromProc(fd);
  },
  fdState: (fd) => {
    const c = loadLibc();
    return c ? fdStateVia(c, fd) : fdStateFromProc(fd);
  },
  sockInfo: (fd) => {
    const c = loadLibc();
    return c ? sockInfoVia(c, fd) : undefined;
  },
  fdKind: (fd) => {
    const c = loadLibc();
    return c ? fdKindVia(c, fd, process.arch) : undefined;
  },
  pidfdId: () => {
    const c = loadLibc();
    return c ? pidfdIdVia(c, process.pid, process.arch) : undefined;
  },
  // Bun's first process.stderr.write costs about 6 ms and loading its node:fs
  // about 1.4 ms; write(2) over FFI costs microseconds once libc is loaded.
  write: (stream, text) => {
    const c = loadLibc();
    const fd = stream === "stdout" ? 1 : 2;
    if (!c || !writeAllVia(c, fd, text)) nodeRuntime.write(stream, text);
  },
  fdPassing: () => {
    const c = loadLibc();
    return c ? fdPassingVia(c) : undefined;
  },
  monotonicUsec: () => {
    const c = loadLibc();
    return c ? monotonicUsecVia(c) : nodeRuntime.monotonicUsec();
  },
  notifySend: (path, state, value) => {
    const c = loadLibc();
    if (!c) return nodeRuntime.notifySend(path, state, value);
    if (!sendWithFdsVia(c, path, new TextEncoder().encode(state), [])) {
      return Promise.reject(refused(value));
    }
    return Promise.resolve();
  },
  fifoReadable: (fd) => {
    // fs.createReadStream, which works here, not new net.Socket({ fd }),
    // which in Bun closes an inherited socket (ERR_SOCKET_CLOSED).
    const fs = process.getBuiltinModule("node:fs") as typeof import("node:fs");
    const stream = process.getBuiltinModule("node:stream") as typeof import("node:stream");
    const rs = fs.createReadStream("", { fd, autoClose: false, highWaterMark: 65536 });
    return Promise.resolve(stream.Readable.toWeb(rs) as unknown as ReadableStream<Uint8Array>);
  },
  version: () => `bun ${(globalThis as Any).Bun.version}`,
  net: () => Promise.resolve(bunNet),
  dgram: () => import("./dgram.ts").then((m) => m.bunDgram),
  http: () => import("./http.ts").then((m) => m.bunHttp),
  // Bun.serve itself with the fd put under its listener (about five times
  // the requests/s of serve() over node:http in Bun: docs/benchmarks.md, "HTTP"), loaded
  // only when an activated serve() asks for it; null (node:http then) where
  // an internal is missing.
  serveFast: (fd, handler, options) =>
    import("./http_fast.ts").then((m) => m.serveFast(fd, handler, options)),
  launcher: () => import("../ffi/launcher.ts").then((m) => m.ffiLauncher("bun")),
};

// The Bun shim's runtime contract: Node's, plus bun:ffi for fcntl and the
// socket's own getsockopt/getsockname, which cost microseconds where reading
// /proc/net/tcp costs milliseconds.
import type { Runtime } from "../src/_runtime.ts";
import { type Libc, LIBC, LIBC_SYMBOLS, fdStateVia, pidfdIdVia, setCloexecVia, sockInfoVia, SYS_PIDFD_OPEN } from "./_libc.ts";
import { fdStateFromProc, nodeRuntime } from "./_node.ts";

// deno-lint-ignore no-explicit-any
type Any = any;

let libc: Libc | null | undefined;

function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  try {
    // A synchronous require keeps listenFds() synchronous; bun:ffi loads in
    // about 0.5 ms.
    const ffi = (process as Any).getBuiltinModule?.("bun:ffi") ?? null;
    if (ffi === null) return (libc = null);
    const symbols: Record<string, { args: string[]; returns: string }> = {};
    for (const [name, def] of Object.entries(LIBC_SYMBOLS)) {
      symbols[name] = { args: def.parameters.map((p) => (p === "buffer" ? "ptr" : p)), returns: def.result };
    }
    const s = ffi.dlopen(LIBC, symbols).symbols;
    const arch = process.arch;
    libc = {
      fcntl: (fd, cmd, arg) => s.fcntl(fd, cmd, arg),
      getsockopt: (fd, level, name, value, len) => s.getsockopt(fd, level, name, value, len),
      getsockname: (fd, addr, len) => s.getsockname(fd, addr, len),
      pidfdOpen: (pid) => Number(s.syscall(SYS_PIDFD_OPEN[arch], pid, 0)),
      fstat: (fd, buf) => s.fstat(fd, buf),
      fstatfs: (fd, buf) => s.fstatfs(fd, buf),
      close: (fd) => s.close(fd),
    };
  } catch {
    libc = null; // no libc.so.6 (musl) or FFI unavailable: /proc instead
  }
  return libc;
}

/** The contract as Bun fulfils it. */
export const bunRuntime: Runtime = {
  ...nodeRuntime,
  name: "bun",
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
  pidfdId: () => {
    const c = loadLibc();
    return c ? pidfdIdVia(c, process.pid, process.arch) : undefined;
  },
  version: () => `bun ${(globalThis as Any).Bun.version}`,
  net: () => import("./_net_bun.ts").then((m) => m.bunNet),
};

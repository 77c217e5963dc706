// libc calls shared by the Deno and Bun shims, which each bind them through
// their own FFI (Deno.dlopen, bun:ffi). Node has no FFI without a native addon.
import type { FdPassing, FdState, SockInfo } from "../../src/_runtime.ts";

/** The few libc functions the shims call; buffers are passed as pointers. */
export interface Libc {
  fcntl(fd: number, cmd: number, arg: number): number;
  getsockopt(fd: number, level: number, name: number, value: Uint8Array, len: Uint8Array): number;
  getsockname(fd: number, addr: Uint8Array, len: Uint8Array): number;
  getpeername(fd: number, addr: Uint8Array, len: Uint8Array): number;
  readlink(path: Uint8Array, buf: Uint8Array, size: number): number;
  write(fd: number, buf: Uint8Array, size: number): number;
  send(fd: number, buf: Uint8Array, size: number, flags: number): number;
  dup3(oldfd: number, newfd: number, flags: number): number;
  epollCtl(epfd: number, op: number, fd: number, event: Uint8Array): number;
  open(path: Uint8Array, flags: number, mode: number): number;
  read(fd: number, buf: Uint8Array, size: number): number;
  pidfdOpen(pid: number): number;
  fstat(fd: number, buf: Uint8Array): number;
  fstatfs(fd: number, buf: Uint8Array): number;
  close(fd: number): number;
  socket(domain: number, type: number, protocol: number): number;
  clockGettime(clock: number, ts: Uint8Array): number;
  sendmsg(fd: number, msg: Uint8Array, flags: number): number;
  pipe2(fds: Uint8Array, flags: number): number;
  poll(fds: Uint8Array, n: number, timeoutMs: number): number;
  /** The address of a buffer, for pointers inside C structs. */
  address(buf: Uint8Array): bigint;
}

/** The C library's file name for dlopen. */
export const LIBC = "libc.so.6";

/** A symbol in Deno's FFI notation; bun.ts maps it to Bun's. */
export interface SymbolDef {
  parameters: readonly ("i32" | "i64" | "usize" | "buffer")[];
  result: "i32" | "i64" | "isize";
}

// Four groups, each bound on first use: dlopen compiles a trampoline per
// symbol (about 0.1 ms each in Deno), and EXTRA is needed only for
// LISTEN_PIDFDID, notify and reading /proc without Deno's permission, PEER
// only for an Accept=yes connection Deno takes over. SWAP
// (runtimes/ffi/takeover.ts) is bound with CORE where the shim asks for it, one
// dlopen being cheaper than two.
const CORE = {
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  readlink: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
} as const satisfies Record<string, SymbolDef>;
const SWAP = {
  dup3: { parameters: ["i32", "i32", "i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
} as const satisfies Record<string, SymbolDef>;
const PEER = {
  getpeername: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
} as const satisfies Record<string, SymbolDef>;
const EXTRA = {
  // pidfd_open has no glibc wrapper before 2.36: go through syscall(2).
  syscall: { parameters: ["i64", "i64", "i64"], result: "i64" },
  fstat: { parameters: ["i32", "buffer"], result: "i32" },
  fstatfs: { parameters: ["i32", "buffer"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  open: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
  poll: { parameters: ["buffer", "usize", "i32"], result: "i32" },
} as const satisfies Record<string, SymbolDef>;

// deno-lint-ignore no-explicit-any
type Fn = (...args: any[]) => any;

/**
 * Binds libc through a runtime's dlopen. `big` says whether 64-bit integer
 * arguments must be BigInts (Deno) or plain numbers (Bun); `withSwap` binds
 * dup3 and epoll_ctl together with the core.
 */
export function makeLibc(
  open: (defs: Record<string, SymbolDef>) => Record<string, Fn>,
  big: boolean,
  arch: string,
  address: (buf: Uint8Array) => bigint,
  withSwap = false,
): Libc {
  let core: Record<string, Fn> | undefined;
  let swap: Record<string, Fn> | undefined;
  let pidfd: Record<string, Fn> | undefined;
  let peer: Record<string, Fn> | undefined;
  const c = () => (core ??= open(withSwap ? { ...CORE, ...SWAP } : CORE));
  const w = () => (swap ??= withSwap ? c() : open(SWAP));
  const p = () => (pidfd ??= open(EXTRA));
  const q = () => (peer ??= open(PEER));
  const n64 = (x: number) => (big ? BigInt(x) : x);
  return {
    fcntl: (fd, cmd, arg) => c().fcntl(fd, cmd, arg),
    getsockopt: (fd, level, name, value, len) => c().getsockopt(fd, level, name, value, len),
    getsockname: (fd, addr, len) => c().getsockname(fd, addr, len),
    getpeername: (fd, addr, len) => q().getpeername(fd, addr, len),
    readlink: (path, buf, size) => Number(c().readlink(path, buf, n64(size))),
    write: (fd, buf, size) => Number(c().write(fd, buf, n64(size))),
    send: (fd, buf, size, flags) => Number(c().send(fd, buf, n64(size), flags)),
    dup3: (oldfd, newfd, flags) => w().dup3(oldfd, newfd, flags),
    epollCtl: (epfd, op, fd, event) => w().epoll_ctl(epfd, op, fd, event),
    open: (path, flags, mode) => p().open(path, flags, mode),
    read: (fd, buf, size) => Number(p().read(fd, buf, n64(size))),
    pidfdOpen: (pid) => Number(p().syscall(n64(SYS_PIDFD_OPEN[arch] ?? -1), n64(pid), n64(0))),
    fstat: (fd, buf) => p().fstat(fd, buf),
    fstatfs: (fd, buf) => p().fstatfs(fd, buf),
    close: (fd) => p().close(fd),
    socket: (domain, type, protocol) => p().socket(domain, type, protocol),
    clockGettime: (clock, ts) => p().clock_gettime(clock, ts),
    sendmsg: (fd, msg, flags) => Number(p().sendmsg(fd, msg, flags)),
    pipe2: (fds, flags) => p().pipe2(fds, flags),
    poll: (fds, n, timeoutMs) => p().poll(fds, n64(n), timeoutMs),
    address,
  };
}

const F_GETFD = 1;
const F_SETFD = 2;
const FD_CLOEXEC = 1;
const SYS_PIDFD_OPEN: Record<string, number> = { x64: 434, x86_64: 434, arm64: 434, aarch64: 434 };

export function fdStateVia(libc: Libc, fd: number): FdState {
  const flags = libc.fcntl(fd, F_GETFD, 0);
  if (flags < 0) return "closed";
  return (flags & FD_CLOEXEC) !== 0 ? "cloexec" : "inheritable";
}

export function setCloexecVia(libc: Libc, fd: number): FdState {
  const flags = libc.fcntl(fd, F_GETFD, 0);
  if (flags < 0) return "closed";
  if ((flags & FD_CLOEXEC) !== 0) return "cloexec";
  return libc.fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0 ? "inheritable" : "cloexec";
}

function intOpt(libc: Libc, fd: number, name: number): number | undefined {
  const value = new Uint8Array(4);
  const len = new Uint8Array(4);
  new DataView(len.buffer).setUint32(0, 4, true);
  if (libc.getsockopt(fd, 1, /* SOL_SOCKET */ name, value, len) < 0) return undefined;
  return new DataView(value.buffer).getInt32(0, true);
}

export function sockInfoVia(libc: Libc, fd: number): SockInfo | "ENOTSOCK" | "EBADF" {
  if (libc.fcntl(fd, F_GETFD, 0) < 0) return "EBADF";
  const type = intOpt(libc, fd, 3 /* SO_TYPE */);
  if (type === undefined) return "ENOTSOCK";
  const domain = intOpt(libc, fd, 39 /* SO_DOMAIN */) ?? 0;
  const listening = intOpt(libc, fd, 30 /* SO_ACCEPTCONN */) === 1;
  const addr = new Uint8Array(128);
  const len = new Uint8Array(4);
  new DataView(len.buffer).setUint32(0, addr.length, true);
  const ok = libc.getsockname(fd, addr, len) === 0;
  const n = ok ? Math.min(new DataView(len.buffer).getUint32(0, true), addr.length) : 0;
  return { domain, type, listening, sockname: addr.subarray(0, n) };
}

/** readlink(2) through libc; undefined when the path does not resolve. */
export function readLinkVia(libc: Libc, path: string): string | undefined {
  const buf = new Uint8Array(4096);
  const n = Number(libc.readlink(new TextEncoder().encode(path + "\0"), buf, buf.length));
  return n < 0 ? undefined : new TextDecoder().decode(buf.subarray(0, n));
}

/**
 * A whole (small) file as latin1 text through open(2) and read(2); undefined
 * when it cannot be opened: for Deno, which refuses /proc to its own file
 * API without -A, where FFI is granted.
 */
export function readTextVia(libc: Libc, path: string): string | undefined {
  const fd = libc.open(new TextEncoder().encode(path + "\0"), 0o2000000, /* O_RDONLY | O_CLOEXEC */ 0);
  if (fd < 0) return undefined;
  try {
    let s = "";
    const buf = new Uint8Array(16384);
    for (;;) {
      const n = libc.read(fd, buf, buf.length);
      if (n < 0) return undefined;
      if (n === 0) return s;
      for (let i = 0; i < n; i += 8192) s += String.fromCharCode(...buf.subarray(i, Math.min(n, i + 8192)));
    }
  } finally {
    libc.close(fd);
  }
}

/**
 * What fstat(2) says an fd is, from st_mode: for the runtimes whose own file
 * API cannot fstat an inherited fd (Deno) or costs a module load (Bun's
 * node:fs). The layout is glibc's for x86_64 (st_mode at byte 24) and
 * aarch64 (at byte 16).
 */
export function fdKindVia(
  libc: Libc,
  fd: number,
  arch: string,
): "fifo" | "file" | "socket" | "other" | undefined {
  const at = arch === "x64" || arch === "x86_64" ? 24 : arch === "arm64" || arch === "aarch64" ? 16 : -1;
  if (at < 0) return undefined;
  const st = new Uint8Array(256);
  if (libc.fstat(fd, st) !== 0) return undefined;
  const type = new DataView(st.buffer).getUint32(at, true) & 0o170000;
  if (type === 0o010000) return "fifo";
  if (type === 0o140000) return "socket";
  // Regular files and devices (/dev/null where a socket was due).
  if (type === 0o100000 || type === 0o020000 || type === 0o060000) return "file";
  return "other";
}

/**
 * sendmsg(2) of one datagram, with `fds` (if any) as SCM_RIGHTS, to the
 * AF_UNIX address `path` (a leading NUL for an abstract name), from a fresh
 * close-on-exec SOCK_DGRAM socket, as sd_notify does: what every notify,
 * FDSTORE=1 and BARRIER=1 need. Returns false when nothing took it. The structs are laid out for
 * LP64 Linux (x86_64, aarch64): msghdr 56 bytes, iovec 16, cmsghdr 16.
 */
export function sendWithFdsVia(libc: Libc, path: Uint8Array, data: Uint8Array, fds: number[]): boolean {
  const fd = libc.socket(1, /* AF_UNIX */ 2 /* SOCK_DGRAM */ | 0o2000000, /* SOCK_CLOEXEC */ 0);
  if (fd < 0) return false;
  try {
    const nameLen = 2 + path.length + (path[0] === 0 ? 0 : 1);
    const name = new Uint8Array(nameLen);
    name[0] = 1;
    name.set(path, 2);
    const iov = new Uint8Array(16);
    const iv = new DataView(iov.buffer);
    iv.setBigUint64(0, libc.address(data), true);
    iv.setBigUint64(8, BigInt(data.length), true);
    const cmsgLen = 16 + 4 * fds.length;
    const control = new Uint8Array(fds.length ? 16 + Math.ceil((4 * fds.length) / 8) * 8 : 8);
    const cv = new DataView(control.buffer);
    if (fds.length) {
      cv.setBigUint64(0, BigInt(cmsgLen), true);
      cv.setInt32(8, 1, true); // SOL_SOCKET
      cv.setInt32(12, 1, true); // SCM_RIGHTS
      fds.forEach((f, i) => cv.setInt32(16 + 4 * i, f, true));
    }
    const msg = new Uint8Array(56);
    const mv = new DataView(msg.buffer);
    mv.setBigUint64(0, libc.address(name), true);
    mv.setUint32(8, nameLen, true);
    mv.setBigUint64(16, libc.address(iov), true);
    mv.setBigUint64(24, 1n, true);
    if (fds.length) {
      mv.setBigUint64(32, libc.address(control), true);
      mv.setBigUint64(40, BigInt(control.length), true);
    }
    return libc.sendmsg(fd, msg, 0x4000 /* MSG_NOSIGNAL */) === data.length;
  } finally {
    libc.close(fd);
  }
}

/** A pipe (close-on-exec): [read end, write end], or undefined. */
export function pipeVia(libc: Libc): [number, number] | undefined {
  const fds = new Uint8Array(8);
  if (libc.pipe2(fds, 0o2000000 /* O_CLOEXEC */) !== 0) return undefined;
  const v = new DataView(fds.buffer);
  return [v.getInt32(0, true), v.getInt32(4, true)];
}

/** Whether the write end of the pipe whose read end is `fd` was closed everywhere (POLLHUP). */
export function hungUpVia(libc: Libc, fd: number): boolean {
  const pfd = new Uint8Array(8);
  const v = new DataView(pfd.buffer);
  v.setInt32(0, fd, true);
  v.setInt16(4, 0, true); // events: POLLHUP is always reported
  return libc.poll(pfd, 1, 0) === 1 && (v.getInt16(6, true) & 0x10 /* POLLHUP */) !== 0;
}

/** The fd-passing capability over libc. */
export function fdPassingVia(libc: Libc): FdPassing {
  return {
    send: (path, state, fds) => sendWithFdsVia(libc, path, new TextEncoder().encode(state), fds),
    pipe: () => pipeVia(libc),
    hungUp: (fd) => hungUpVia(libc, fd),
    close: (fd) => void libc.close(fd),
  };
}

/** CLOCK_MONOTONIC in microseconds (Bun's and Deno's process.hrtime count from process start). */
export function monotonicUsecVia(libc: Libc): bigint {
  const ts = new Uint8Array(16);
  if (libc.clockGettime(1, /* CLOCK_MONOTONIC */ ts) !== 0) {
    throw new Error("clock_gettime(CLOCK_MONOTONIC) failed");
  }
  const v = new DataView(ts.buffer);
  return v.getBigInt64(0, true) * 1_000_000n + v.getBigInt64(8, true) / 1000n;
}

/** Writes all of `text` to `fd`, retrying after EINTR/EAGAIN-sized short writes. */
export function writeAllVia(libc: Libc, fd: number, text: string): boolean {
  const bytes = new TextEncoder().encode(text);
  let off = 0;
  for (let tries = 0; off < bytes.length && tries < 1000; tries++) {
    const n = libc.write(fd, bytes.subarray(off), bytes.length - off);
    if (n > 0) off += n;
  }
  return off === bytes.length;
}

/** The pidfs inode id of `pid`, as systemd's pidfd_get_inode_id reads it (st_ino). */
export function pidfdIdVia(libc: Libc, pid: number, arch: string): bigint | undefined {
  if (SYS_PIDFD_OPEN[arch] === undefined) return undefined;
  const pidfd = libc.pidfdOpen(pid);
  if (pidfd < 0) return undefined;
  try {
    // Before pidfs (Linux 6.9) every pidfd shares one anonymous inode: only a
    // pidfs inode identifies the process, as pidfd_check_pidfs() insists.
    const fs = new Uint8Array(128);
    if (libc.fstatfs(pidfd, fs) !== 0) return undefined;
    if (new DataView(fs.buffer).getUint32(0, true) !== 0x50494446 /* PID_FS_MAGIC */) return undefined;
    const st = new Uint8Array(256);
    if (libc.fstat(pidfd, st) !== 0) return undefined;
    // st_ino follows the 8-byte st_dev on both x86_64 and aarch64.
    return new DataView(st.buffer).getBigUint64(8, true);
  } finally {
    libc.close(pidfd);
  }
}

export { SYS_PIDFD_OPEN };

// The contract every runtime shim (runtimes/node/runtime.ts, deno/runtime.ts, bun/runtime.ts)
// implements. src/ reaches the runtime only through it, so src/ never touches
// `Deno`, `Bun` or `node:net` itself.

/** What a socket's own getsockopt/getsockname say, read over FFI. */
export interface SockInfo {
  /** SO_DOMAIN: 1 AF_UNIX, 2 AF_INET, 10 AF_INET6, 16 AF_NETLINK, ... */
  domain: number;
  /** SO_TYPE: 1 SOCK_STREAM, 2 SOCK_DGRAM, 5 SOCK_SEQPACKET, ... */
  type: number;
  /** SO_ACCEPTCONN. */
  listening: boolean;
  /** The raw sockaddr from getsockname. */
  sockname: Uint8Array;
}

/**
 * FD_CLOEXEC as /proc/self/fdinfo/N tells it (`text` undefined: the fd is
 * not open), for the runtimes that cannot call fcntl.
 */
export function fdStateFromFdinfo(text: string | undefined): FdState {
  if (text === undefined) return "closed";
  const m = /^flags:\s*([0-7]+)/m.exec(text);
  if (!m) return "unknown";
  return (parseInt(m[1], 8) & 0o2000000) !== 0 ? "cloexec" : "inheritable";
}

/** A runtime TCP handle opened on an inherited fd, with what it tells. */
export interface TcpHandle {
  family: "ipv4" | "ipv6";
  address: string;
  port: number;
  /** getpeername succeeded: an Accept=yes connection, not a listener. */
  connected: boolean;
  handle: unknown;
}

/** What FDSTORE=1 and BARRIER=1 need of a runtime. */
export interface FdPassing {
  /** One datagram with `fds` attached; false when nothing received it. */
  send(path: Uint8Array, state: string, fds: number[]): boolean;
  /** A close-on-exec pipe: [read end, write end]. */
  pipe(): [number, number] | undefined;
  /** Whether every write end of the pipe was closed. */
  hungUp(readFd: number): boolean;
  close(fd: number): void;
}

/** The file system as `socket-activate unit` sees it (runtimes/node_api/files.ts). */
export interface Files {
  cwd(): string;
  /** realpath(3); undefined when the path does not exist. */
  realPath(path: string): string | undefined;
  /** stat(2), following links; undefined when the path does not exist. */
  stat(path: string): { kind: "file" | "dir" | "other"; executable: boolean } | undefined;
  /** The first `bytes` bytes of a file; undefined when it cannot be read. */
  readHead(path: string, bytes: number): Uint8Array | undefined;
  /** A whole text file (UTF-8); undefined when it does not exist. */
  readText(path: string): string | undefined;
  /** Writes a file; without `overwrite` an existing one is an error (EEXIST). */
  writeText(path: string, text: string, overwrite: boolean): void;
  /**
   * Whether the Node at `exe`, started with `flags`, would give the package
   * node:ffi (26.9+, not turned off by a flag): asked by running it once.
   * False when it cannot be run.
   */
  nodeHasFfi(exe: string, flags: string[]): boolean;
}

/** The answer of an fd probe: open or not, close-on-exec or not. */
export type FdState = "cloexec" | "inheritable" | "closed" | "unknown";

import { ActivationError } from "./errors.ts";
import type { DgramAdapter, NetAdapter } from "./_net.ts";
import type { FastServeOptions, FastServer, HttpAdapter, ServeHandler } from "./_http.ts";
import type { Launcher } from "./cli/launcher.ts";

export interface Runtime {
  readonly name: "node" | "deno" | "bun";
  pid(): number;
  ppid(): number | undefined;
  getEnv(key: string): string | undefined;
  deleteEnv(key: string): void;
  /** readlink(2); undefined when the path does not exist. */
  readLink(path: string): string | undefined;
  /** A whole (small) file as latin1 text; undefined when it does not exist. */
  readText(path: string): string | undefined;
  /** Whether a path names a FIFO, a regular file, a character device, ... */
  statKind(path: string): "fifo" | "file" | "other" | undefined;
  /** The file system for `socket-activate unit`, loaded on first use. */
  files(): Promise<Files>;
  /**
   * What libsystemd's fd_cloexec(fd, true) does: set FD_CLOEXEC, and tell
   * whether the fd was open. "unknown" where the runtime can do neither.
   */
  setCloexec(fd: number): FdState;
  /** F_GETFD without changing anything; "unknown" where it cannot tell. */
  fdState(fd: number): FdState;
  /** Socket facts over FFI, or undefined where FFI is not at hand. */
  sockInfo(fd: number): SockInfo | "ENOTSOCK" | "EBADF" | undefined;
  /**
   * What fstat(2) says the fd is, over FFI; undefined where FFI is not at
   * hand (then the /proc/self/fd target is stat'ed instead).
   */
  fdKind?(fd: number): "fifo" | "file" | "socket" | "other" | undefined;
  /** This process's pidfs inode id, or undefined where it cannot be learnt. */
  pidfdId(): bigint | undefined;
  args(): string[];
  write(stream: "stdout" | "stderr", text: string): void;
  exit(code: number): never;
  version(): string;
  /**
   * Wraps an fd that is neither unix nor UDP in the runtime's own TCP handle
   * and reads its addresses through it: Node's way to learn in microseconds
   * what the /proc TCP tables tell in milliseconds. The handle must then be
   * the one served (a second handle on the fd would clash in epoll), so it is
   * passed to the adapter. Undefined where the runtime has no such handle.
   */
  openTcp?(fd: number): TcpHandle | undefined;
  /**
   * Sends one sd_notify datagram to `path` (AF_UNIX address bytes; a leading
   * NUL for an abstract name). `value` is NOTIFY_SOCKET as given, for errors.
   */
  notifySend(path: Uint8Array, state: string, value: string): Promise<void>;
  /**
   * Passing fds to NOTIFY_SOCKET (FDSTORE=1, BARRIER=1): sendmsg with
   * SCM_RIGHTS, a pipe, and a POLLHUP check. Undefined where the runtime
   * cannot (Node 22 and 24; Deno without --allow-ffi); a promise where it binds
   * FFI on first use (Node 26).
   */
  fdPassing(): FdPassing | undefined | Promise<FdPassing | undefined>;
  /** CLOCK_MONOTONIC in microseconds, as MONOTONIC_USEC wants it. */
  monotonicUsec(): bigint;
  /** Lets the process exit although the timer is pending. */
  unrefTimer(timer: unknown): void;
  /** kill(2): sends `signal` to `pid`; false when there is no such process (Deno needs --allow-run). */
  kill(pid: number, signal: "SIGUSR2"): boolean;
  /** Calls `fn` on a signal; returns a function that removes the listener. */
  onSignal(signal: "SIGTERM" | "SIGINT" | "SIGHUP", fn: () => void): () => void;
  /**
   * Calls `fn` on a signal that no handler of the program's own takes: one
   * added with process.on or process.once and present when the signal
   * arrives (a once handler that runs in the same dispatch still counts).
   * Deno's Deno.addSignalListener cannot be counted. Returns the remover.
   */
  onDefaultSignal(signal: "SIGTERM" | "SIGINT" | "SIGHUP", fn: () => void): () => void;
  /** A readable stream of an inherited FIFO fd. */
  fifoReadable(fd: number): Promise<ReadableStream<Uint8Array>>;
  /** The datagram adapter, loaded on first use. */
  dgram(): Promise<DgramAdapter>;
  /** The stream adapter, loaded on first use. */
  net(): Promise<NetAdapter>;
  /** The HTTP adapter (node:http and how it reaches an fd), loaded on first use. */
  http(): Promise<HttpAdapter>;
  /**
   * The seam for a faster HTTP server than node:http: the runtime's own,
   * put on the listening socket `fd` through its internals, behind feature
   * detection. serve() tries it first on an activated fd and serves through
   * node:http when it is absent or answers null (an internal missing, TLS or
   * a unix socket it cannot do); it must then leave the fd untouched.
   */
  serveFast?(fd: number, handler: ServeHandler, options: FastServeOptions): Promise<FastServer | null>;
  /** What `socket-activate run` needs, loaded on first use. */
  launcher(): Promise<Launcher>;
}

let current: Runtime | undefined;
let wrongEntry: Runtime["name"] | undefined;

const NAMES = { node: "Node", deno: "Deno", bun: "Bun" } as const;

/** The runtime this code runs in, told as runtimes/detect.ts tells it. */
export function runningIn(): Runtime["name"] {
  const g = globalThis as { Deno?: unknown; Bun?: unknown };
  return g.Deno !== undefined ? "deno" : g.Bun !== undefined ? "bun" : "node";
}

/**
 * Registers the shim an entry point was built for. A shim for another
 * runtime is not registered: `socket-activate/node` run by Deno would put an
 * http.Server on a Node TCP handle that Deno never polls, and the Node shim
 * in Bun marks no fd close-on-exec. getRuntime() then refuses, before any fd
 * is touched, naming the entry to use.
 */
export function setRuntime(runtime: Runtime): void {
  if (runtime.name !== runningIn()) {
    wrongEntry ??= runtime.name;
    return;
  }
  current = runtime;
}

/** The shim registered by the entry point that loaded the package. */
export function getRuntime(): Runtime {
  if (current === undefined) {
    if (wrongEntry !== undefined) {
      const here = runningIn();
      throw new ActivationError(
        "ENOTSUP",
        `socket-activate's /${wrongEntry} entry is the build for ${NAMES[wrongEntry]}, but this is ` +
          `${
            NAMES[here]
          }: load the package's main entry ("socket-activate" on npm, whose export conditions ` +
          `pick ${
            NAMES[here]
          }'s build; mod.ts on JSR) or its /${here} entry instead. Nothing was listened on`,
      );
    }
    throw new Error(
      // Worded without "import ... from": publint takes that, even in a
      // string, for ES module syntax, and the CommonJS bin for a misnamed ESM file.
      "socket-activate was loaded without a runtime shim: its entries are the package " +
        '("socket-activate") and mod.ts, not a file under src/',
    );
  }
  return current;
}

// Stream sockets in Deno: Deno.listen, native and fast, for a socket of its
// own and, where FFI is granted, for an inherited listening fd too, put under
// a private Deno.listen listener (runtimes/ffi/takeover.ts). Deno.listen has no
// fd option and no public API turns an fd into a Deno listener
// (denoland/deno#6529, #14006); node:net can, and serves an inherited fd
// without FFI and an Accept=yes connection, but loading it costs Deno about
// 11 ms of start-up (node:stream and the Node compatibility layer behind it),
// the greater part of an activated start.
import type { Addr, Conn, NetAdapter, RawListener, Target } from "../../src/_net.ts";
import type { TlsOptions } from "../../src/_http.ts";
import { type Libc, readTextVia } from "../ffi/libc.ts";
import { connFdDirect, type DirectSend, importNet, listenFdDirect } from "../node_api/net.ts";
import { StreamConn } from "../../src/_streams.ts";
import {
  AF_UNIX,
  connectedFamily,
  listeningFamily,
  peername,
  privateSockaddr,
  setNonblocking,
  sockname,
  type Sys,
  takeOver,
  toAddr as fromSockaddr,
  unsupported,
} from "../ffi/takeover.ts";

// deno-lint-ignore no-explicit-any
type Any = any;
const D = (): Any => (globalThis as Any).Deno;

function toAddr(a: Any, fallbackPath = ""): Addr {
  return a?.transport === "tcp"
    ? { transport: "tcp", hostname: a.hostname, port: a.port }
    : { transport: "unix", path: a?.path ?? fallbackPath };
}

// Accept loops that no client can stop, here rather than in a module of
// their own (each module costs Deno's start-up: a dynamic import of one this
// size took 0.23 to 0.45 ms). accept() fails for reasons that belong to one
// connection as well as for a closed listener, and Deno's Listener rejects
// with both alike: a loop that takes every rejection for "closed" (as
// Deno's own `for await (const conn of listener)` does for all but
// BadResource and Interrupted, by throwing) stops serving at the first
// client that resets while queued. Node's libuv and Bun's uSockets retry
// these themselves.

/** What a failed accept() means for the loop that called it. */
export type AcceptVerdict = "again" | "backoff" | "closed";

// Failures of the connection being accepted: accept(2) on Linux "passes
// already-pending network errors on the new socket as an error code from
// accept()" and asks callers to retry on ENETDOWN, EPROTO, ENOPROTOOPT,
// EHOSTDOWN, ENONET, EHOSTUNREACH, EOPNOTSUPP and ENETUNREACH; ECONNABORTED
// is a connection aborted while queued, EPERM one a firewall rule refused.
// Deno 2.9 asks each accepted socket for its peer address (getpeername),
// which fails with ENOTCONN, rejected as Deno.errors.NotConnected, for a
// client that reset while queued (measured with strace; denoland/deno#8499,
// closed as stale). Deno names the rest by class: ConnectionReset,
// ConnectionAborted, NotConnected, TimedOut, WouldBlock, Interrupted (EINTR;
// a closed listener is told by the loop's own flag).
const PER_CONNECTION = new Set([
  "ECONNABORTED",
  "ECONNRESET",
  "ENOTCONN",
  "EPROTO",
  "EPERM",
  "ETIMEDOUT",
  "ENETDOWN",
  "ENOPROTOOPT",
  "EHOSTDOWN",
  "ENONET",
  "EHOSTUNREACH",
  "EOPNOTSUPP",
  "ENETUNREACH",
  "EAGAIN",
  "EWOULDBLOCK",
  "EINTR",
  "ConnectionReset",
  "ConnectionAborted",
  "NotConnected",
  "TimedOut",
  "WouldBlock",
  "Interrupted",
]);

/**
 * Which failures end an accept loop, which are retried at once and which
 * after a pause. Only a listener that is gone (Deno's BadResource, EBADF)
 * ends it. A shortage (EMFILE, ENFILE, ENOBUFS, ENOMEM) and any failure not
 * known to be a connection's are retried after a pause: at once, they would
 * spin, and an unknown one must not stop a server either
 * (denoland/deno#10148: EMFILE ended Deno's accept loops).
 */
export function acceptVerdict(error: unknown): AcceptVerdict {
  const e = error as { code?: unknown; name?: unknown } | null | undefined;
  const code = typeof e?.code === "string" ? e.code : "";
  const name = typeof e?.name === "string" ? e.name : "";
  if (name === "BadResource" || code === "EBADF") return "closed";
  if (PER_CONNECTION.has(code) || PER_CONNECTION.has(name)) return "again";
  return "backoff";
}

const FIRST_PAUSE = 10, LONGEST_PAUSE = 1000, SAY_EVERY = 10_000;

/** A listener whose accept() the wrapper replaces. */
export interface Accepting<C> {
  accept(): Promise<C>;
}

/**
 * Replaces `listener.accept` (on the instance: Deno's async iterator calls
 * it too) with one that rejects only once the listener is closed: a
 * connection's failure is skipped, a shortage retried after 10 ms, doubling
 * up to 1 s while it lasts, and said on stderr at most every 10 s (clients
 * that come and go under a shortage would otherwise make a line each).
 * Returns the stop to call when the listener is closed: it ends a pause at
 * once, so the next accept() meets the closed listener and a stopped server
 * leaves no timer behind.
 */
export function keepAccepting<C>(listener: Accepting<C>): () => void {
  const accept = listener.accept.bind(listener);
  let stopped = false;
  let pause = 0;
  let said = -Infinity;
  let wake: (() => void) | undefined;
  listener.accept = async (): Promise<C> => {
    for (;;) {
      try {
        const conn = await accept();
        pause = 0;
        return conn;
      } catch (e) {
        const verdict = stopped ? "closed" : acceptVerdict(e);
        if (verdict === "closed") throw e;
        if (verdict === "again") continue;
        pause = pause === 0 ? FIRST_PAUSE : Math.min(pause * 2, LONGEST_PAUSE);
        if (Date.now() - said >= SAY_EVERY) {
          said = Date.now();
          console.error(
            `socket-activate: accept failed (${describe(e)}): accepting again in ${pause} ms, pausing up ` +
              `to ${LONGEST_PAUSE / 1000} s while it lasts (said at most every ${SAY_EVERY / 1000} s)`,
          );
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, pause);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
      }
    }
  };
  return () => {
    stopped = true;
    wake?.();
  };
}

function describe(e: unknown): string {
  const x = e as { code?: unknown; name?: unknown; message?: unknown } | null | undefined;
  const code = typeof x?.code === "string" ? x.code : typeof x?.name === "string" ? x.name : "";
  const message = typeof x?.message === "string" ? x.message : String(e);
  return code !== "" && !message.startsWith(code) ? `${code}: ${message}` : message;
}

// Deno.Conn.read() fills a buffer given when the read starts, and an idle
// connection always has a read pending: with a fresh 64 KiB buffer per read
// (Deno's own conn.readable does the same), 10,000 idle connections held
// 640 MiB (issue 29), and each chunk kept its whole buffer alive. Deno has no
// read that allocates when data arrives, and one buffer shared by every
// connection would be written by two reads that complete in one turn of the
// event loop. So the buffer follows the traffic: MIN_READ after a short read
// (256 bytes: 6.2 KiB per idle Deno.Conn against 7.1 with 1 KiB, at 10,000),
// four times larger after a read that filled it (up to MAX_READ), the power
// of two that fits the last read otherwise.
const MIN_READ = 256, MAX_READ = 64 * 1024;

/** The size of the buffer for the read after one that returned `n` bytes into `size`. */
export function nextReadSize(n: number, size: number): number {
  if (n >= size) return Math.min(size * 4, MAX_READ);
  return n <= MIN_READ ? MIN_READ : Math.min(2 ** Math.ceil(Math.log2(n)), MAX_READ);
}

/**
 * A read into `buf` of the connection `c`: bytes read, 0 or null at the end
 * (`buf` is never empty). Deno.Conn.read() (Deno 2.9, ext/net/01_net.js) is
 * an async function that awaits `core.read(rid, buf)` with the op's promise
 * kept in a Set of the connection's (for unref()): an idle connection, whose
 * read is always pending, held a suspended frame, its promise and closures
 * and a Set entry, about 0.5 KiB (issue 29). Where the internal is there, the
 * op's promise is taken as it is (0 at the end); the package unrefs no
 * connection. Deno.Conn's own read otherwise (null at the end).
 */
type ReadInto = (c: Any, buf: Uint8Array) => Promise<number | null>;
let readInto: ReadInto | undefined;
function reader(): ReadInto {
  const inner = D().internal === undefined ? undefined : D()[D().internal];
  const core = inner?.core;
  const rid = core?.internalRidSymbol;
  if (typeof core?.read !== "function" || typeof rid !== "symbol") return (c, buf) => c.read(buf);
  const read = core.read;
  return (c, buf) => {
    const r = c[rid];
    return typeof r === "number" ? read.call(core, r, buf) : c.read(buf);
  };
}

/**
 * A Deno.Conn as a Conn whose streams tell when both directions are done;
 * `addrs` replaces the addresses Deno knows (a taken-over connection's are
 * its private ones).
 */
function fromDenoConn(c: Any, localPath: string, addrs?: { local: Addr; remote: Addr }): Conn {
  return new DenoConn(c, localPath, addrs);
}

// A class rather than closures: an idle connection holds its fields and no
// functions of its own (issue 29).
class DenoConn extends StreamConn {
  readonly c: Any;
  readonly localPath: string;
  #addrs: { local: Addr; remote: Addr } | undefined;
  readDone = false;
  writeDone = false;
  isClosed = false;
  /** The size of the next read's buffer (see MIN_READ). */
  size = MIN_READ;

  constructor(c: Any, localPath: string, addrs?: { local: Addr; remote: Addr }) {
    super();
    this.c = c;
    this.localPath = localPath;
    this.#addrs = addrs;
  }

  // Made when first asked for: a connection nobody asks about holds no copies.
  get remoteAddr(): Addr {
    return (this.#addrs ??= this.#fromDeno()).remote;
  }

  get localAddr(): Addr {
    return (this.#addrs ??= this.#fromDeno()).local;
  }

  #fromDeno(): { local: Addr; remote: Addr } {
    return { remote: toAddr(this.c.remoteAddr), local: toAddr(this.c.localAddr, this.localPath) };
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    try {
      this.c.close();
    } catch { /* closed */ }
    this.closedNow();
  }

  settle(): void {
    if (this.readDone && this.writeDone) this.close();
  }

  async write(chunk: Uint8Array): Promise<void> {
    let off = 0;
    while (off < chunk.length) off += await this.c.write(chunk.subarray(off));
  }

  async closeWrite(): Promise<void> {
    try {
      await this.c.closeWrite();
    } catch { /* closed */ }
    this.writeDone = true;
    this.settle();
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return new DenoReader(this);
  }

  // Not an async function: an idle connection's pending read holds two
  // small closures rather than a suspended frame.
  read(): Promise<IteratorResult<Uint8Array>> {
    if (this.isClosed) return Promise.resolve(this.#ended());
    const buf = new Uint8Array(this.size);
    return (readInto ??= reader())(this.c, buf).then(
      (n: number | null) => this.#got(buf, n),
      (e: unknown) => {
        this.readDone = true;
        this.settle();
        if (this.isClosed) return { done: true, value: undefined };
        throw e;
      },
    );
  }

  #ended(): IteratorResult<Uint8Array> {
    this.readDone = true;
    this.settle();
    return { done: true, value: undefined };
  }

  #got(buf: Uint8Array, n: number | null): IteratorResult<Uint8Array> {
    if (n === null || n === 0) return this.#ended();
    this.size = nextReadSize(n, buf.length);
    // A chunk owns at most twice its bytes: a short read is copied out.
    return { done: false, value: n * 2 >= buf.length ? buf.subarray(0, n) : buf.slice(0, n) };
  }
}

class DenoReader implements AsyncIterator<Uint8Array> {
  readonly conn: DenoConn;
  constructor(conn: DenoConn) {
    this.conn = conn;
  }
  next(): Promise<IteratorResult<Uint8Array>> {
    return this.conn.read();
  }
  return(): Promise<IteratorResult<Uint8Array>> {
    this.conn.close();
    return Promise.resolve({ done: true, value: undefined });
  }
}

/**
 * Accepts on a Deno listener until it is closed, each connection to
 * `onConn`; settles once the loop has ended. The listener's accept() is
 * keepAccepting()'s, which rejects only once it is closed.
 */
function acceptLoop(l: Any, localPath: string, onConn: (conn: Conn) => void): Promise<void> {
  return (async () => {
    for (;;) {
      let c;
      try {
        c = await l.accept();
      } catch {
        return; // the listener was closed
      }
      onConn(fromDenoConn(c, localPath));
    }
  })();
}

/**
 * Closes a listener served by acceptLoop(): settles once `loop` has ended,
 * so that a connection Deno accepted before the close (its accept op done,
 * its result not yet in JavaScript) has reached `onConn` and is drained
 * with the others, not closed unanswered when the drain finds nothing open
 * and the process exits (RawListener.close's promise, as node_api/net.ts's for
 * node:net in Deno).
 */
function closeAfter(close: () => void, loop: Promise<void>): () => Promise<void> {
  return () => {
    close();
    return loop;
  };
}

/** Whether `e` is Deno refusing for want of a permission. */
export function isNotCapable(e: unknown): boolean {
  const d = D();
  return e instanceof d.errors.NotCapable || e instanceof d.errors.PermissionDenied;
}

const F_GETFD = 1;
// Where Deno may not list /proc/self/fd (it grants /proc only with -A), the
// fds are probed with fcntl up to here: a service that just started has a
// few dozen.
const PROBE_FDS = 4096;

/** The takeover's view of the system: Deno's API where -A allows it, libc otherwise. */
function denoSys(libc: Libc): Sys {
  // readlink of /proc/self/fd/N, once per fd and twice for some: one small
  // buffer (the targets read are "socket:[N]" and "anon_inode:[eventpoll]").
  const link = new Uint8Array(256);
  const enc = new TextEncoder();
  return {
    fcntl: libc.fcntl,
    getsockopt: libc.getsockopt,
    getsockname: libc.getsockname,
    getpeername: libc.getpeername,
    dup3: libc.dup3,
    epollCtl: libc.epollCtl,
    arch: D().build.arch === "x86_64" ? "x64" : D().build.arch === "aarch64" ? "arm64" : D().build.arch,
    readlink: (path) => {
      const n = libc.readlink(enc.encode(path + "\0"), link, link.length);
      return n < 0 || n === link.length ? undefined : String.fromCharCode(...link.subarray(0, n));
    },
    readText: (path) => {
      try {
        return D().readTextFileSync(path);
      } catch (e) {
        if (!isNotCapable(e)) return undefined;
      }
      return readTextVia(libc, path);
    },
    fds: () => {
      try {
        return [...D().readDirSync("/proc/self/fd")].map((e: Any) => Number(e.name));
      } catch (e) {
        if (!isNotCapable(e)) throw e;
      }
      const out: number[] = [];
      for (let fd = 0; fd < PROBE_FDS; fd++) if (libc.fcntl(fd, F_GETFD, 0) >= 0) out.push(fd);
      return out;
    },
  };
}

function granted(desc: Any): boolean {
  try {
    return D().permissions.querySync(desc).state === "granted";
  } catch {
    return false;
  }
}

/** A Deno listener that took an inherited listening socket over. */
export interface TakenListener {
  /** The Deno.Listener (Deno.TcpListener or Deno.UnixListener); its addr is the private one's. */
  listener: Any;
  /** Where the inherited socket listens. */
  addr: Addr;
  /** Whether the listener is Deno.listenTls's: its connections speak TLS. */
  tls: boolean;
  /** Closes the listener and the inherited fd, as node:net's close would. */
  close(): void;
}

/** A private Deno listener to take a socket over with, and its sockaddr. */
interface Private {
  listener: Any;
  sockaddr: Uint8Array;
  /** Removes a unix listener's temp directory (the path is not needed once taken over). */
  cleanup(): void;
}

/**
 * Opens the private listener of a takeover, undefined where Deno does not
 * grant it: --allow-net for 127.0.0.1; for a unix path in a fresh temp
 * directory --allow-net (Deno 2.9 asks it for "unix:<path>"), --allow-read
 * and --allow-write. Permissions are queried first, since Deno prompts on a
 * terminal for what is not granted. With `tls`, Deno.listenTls's (TCP only).
 */
function openPrivate(unix: boolean, tls?: TlsOptions): Private | undefined {
  const allowed = unix
    ? granted({ name: "net" }) && granted({ name: "read" }) && granted({ name: "write" })
    : granted({ name: "net", host: "127.0.0.1" });
  if (!allowed || (unix && tls !== undefined)) return undefined;
  let dir = "";
  const cleanup = () => {
    if (dir === "") return;
    try {
      D().removeSync(dir, { recursive: true });
    } catch { /* gone */ }
    dir = "";
  };
  try {
    if (unix) {
      dir = D().makeTempDirSync({ prefix: "socket-activate-" });
      const path = `${dir}/s`;
      return {
        listener: D().listen({ transport: "unix", path }),
        sockaddr: privateSockaddr(path, 0),
        cleanup,
      };
    }
    // A TLS listener's socket is a TCP listener like any other: taken over,
    // it hands out Deno.TlsConns on the inherited socket. ALPN as Deno.serve
    // offers it.
    const pem = (x: string | Uint8Array) => typeof x === "string" ? x : new TextDecoder().decode(x);
    const l = tls === undefined
      ? D().listen({ transport: "tcp", hostname: "127.0.0.1", port: 0 })
      : D().listenTls({
        hostname: "127.0.0.1",
        port: 0,
        cert: pem(tls.cert),
        key: pem(tls.key),
        alpnProtocols: ["h2", "http/1.1"],
      });
    return { listener: l, sockaddr: privateSockaddr(undefined, l.addr.port), cleanup };
  } catch {
    cleanup();
    return undefined;
  }
}

/**
 * Puts the inherited listening socket `fd` under a Deno listener of its own
 * (runtimes/ffi/takeover.ts), a Deno.listenTls listener with `tls`; undefined,
 * with `fd` untouched, where FFI or the permission for the private listener
 * (openPrivate) is missing, or a check of the takeover failed.
 */
export function takeOverListener(fd: number, libc: Libc | null, tls?: TlsOptions): TakenListener | undefined {
  if (libc === null) return undefined;
  const sys = denoSys(libc);
  const family = listeningFamily(sys, fd);
  const sa = family === undefined ? undefined : sockname(sys, fd);
  const where = sa === undefined ? undefined : fromSockaddr(sa);
  if (where === undefined || unsupported(sys) !== undefined) return undefined;
  const p = openPrivate(family === AF_UNIX, tls);
  if (p === undefined) return undefined;
  const l = p.listener;
  const taken = setNonblocking(sys, fd) ? takeOver(sys, fd, p.sockaddr) : "untouched";
  p.cleanup(); // a unix path no longer listened on, or never to be
  if (typeof taken !== "number") {
    try {
      l.close(); // the private socket, or after a swap the dup: never fd
    } catch { /* closed */ }
    return undefined;
  }
  const closeListener = l.close.bind(l); // as it is now: listenDeno() wraps it
  // No client's failure may end the accepting, whoever accepts: listen(),
  // serve()'s fast path, a listenDeno() caller's own loop.
  const stop = keepAccepting(l);
  return {
    listener: l,
    addr: where,
    tls: tls !== undefined,
    close: () => {
      stop();
      try {
        closeListener();
      } catch { /* closed */ }
      // As node:net's close would: the inherited socket is closed too, so
      // that the kernel stops queueing connections nobody will accept.
      libc.close(fd);
    },
  };
}

function listenNative(fd: number, libc: Libc | null, onConn: (conn: Conn) => void): RawListener | undefined {
  const t = takeOverListener(fd, libc);
  if (t === undefined) return undefined;
  const loop = acceptLoop(t.listener, t.addr.transport === "unix" ? t.addr.path : "", onConn);
  return { addr: t.addr, sameFd: true, close: closeAfter(t.close, loop) };
}

/**
 * An Accept=yes connection `fd` as a Deno.Conn, without node:net (about
 * 12 ms of each connection's start): Deno connects to a private listener of
 * its own, then the inherited socket is put on that connection's fd
 * (runtimes/ffi/takeover.ts, role "client") and `fd` closed, so that closing
 * the Deno.Conn closes the socket. Undefined, with `fd` untouched, where FFI
 * or the permissions of takeOverListener are missing or a check failed.
 */
async function connNative(fd: number, libc: Libc | null): Promise<Conn | undefined> {
  if (libc === null) return undefined;
  const sys = denoSys(libc);
  if (unsupported(sys) !== undefined) return undefined;
  const family = connectedFamily(sys, fd);
  const local = family === undefined ? undefined : sockname(sys, fd);
  const remote = family === undefined ? undefined : peername(sys, fd);
  const addrs = local && remote && { local: fromSockaddr(local), remote: fromSockaddr(remote) };
  if (!addrs?.local || !addrs.remote) return undefined;
  const p = openPrivate(family === AF_UNIX);
  if (p === undefined) return undefined;
  const closeQuietly = (x: Any) => {
    try {
      x?.close();
    } catch { /* closed */ }
  };
  let c: Any, peer: Any;
  try {
    [c, peer] = await Promise.all([D().connect(p.listener.addr), p.listener.accept()]);
  } catch {
    closeQuietly(c);
    return undefined;
  } finally {
    closeQuietly(p.listener);
    p.cleanup();
  }
  const taken = setNonblocking(sys, fd) ? takeOver(sys, fd, p.sockaddr, "client") : "untouched";
  closeQuietly(peer);
  if (typeof taken !== "number") {
    closeQuietly(c); // the private socket, or after a swap the dup: never fd
    return undefined;
  }
  libc.close(fd);
  return fromDenoConn(c, "", addrs as { local: Addr; remote: Addr });
}

const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;

/**
 * The Deno adapter. `libc` gives the FFI bindings where --allow-ffi is
 * granted (null otherwise): connections on an inherited fd then make their
 * first writes with send(2) (see fromSocket in node_api/net.ts).
 */
export function makeDenoNet(libc: () => Libc | null): NetAdapter {
  let direct: DirectSend | undefined;
  const sender = (): DirectSend | undefined => {
    const c = libc();
    return c === null
      ? undefined
      : (direct ??= (sock, chunk) => c.send(sock, chunk, chunk.length, MSG_DONTWAIT | MSG_NOSIGNAL));
  };
  return {
    listenFd: (fd, onConn) => {
      const native = listenNative(fd, libc(), onConn);
      return native ? Promise.resolve(native) : importNet().then(() => listenFdDirect(fd, onConn, sender()));
    },
    connFd: async (fd) =>
      (await connNative(fd, libc())) ?? importNet().then(() => connFdDirect(fd, sender())),
    listenAddr: (target: Target, onConn) => {
      const path = "path" in target
        ? (target.path.startsWith("@") ? "\0" + target.path.slice(1) : target.path)
        : "";
      const l = "path" in target
        ? D().listen({ transport: "unix", path })
        : D().listen({ transport: "tcp", hostname: target.hostname, port: target.port });
      const stop = keepAccepting(l);
      const loop = acceptLoop(l, "path" in target ? target.path : "", onConn);
      return Promise.resolve({
        addr: toAddr(l.addr, "path" in target ? target.path : ""),
        sameFd: undefined,
        close: closeAfter(() => {
          stop();
          try {
            l.close();
          } catch { /* closed */ }
        }, loop),
      });
    },
  };
}

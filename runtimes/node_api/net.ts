// Stream sockets through node:net: Node's own way in, and Deno's for
// inherited fds (Deno.listen cannot take an fd: denoland/deno#14006).
// Loaded on the first listen() that needs it, never at import: node:net costs
// Deno about 20 ms of start-up.
import type * as Net from "node:net";
import type { Addr, Conn, NetAdapter, RawListener, Target } from "../../src/_net.ts";
import { PushQueue } from "./pushq.ts";
import { StreamConn } from "../../src/_streams.ts";
import { abstractBindWorks } from "./abstract.ts";

// Through getBuiltinModule rather than a static import: the npm bin is one
// bundle, where a static import would load node:net (about 1.3 ms in Node)
// at start-up even for commands that never listen.
let netModule: typeof Net | undefined;
const netm = () => (netModule ??= process.getBuiltinModule("node:net") as typeof Net);

/**
 * Loads node:net through `import()` instead. Deno 2.9 takes about 1.4 ms
 * longer to build node:net for getBuiltinModule than for a dynamic import
 * (10.6 against 12.0 ms, median of 12 cold processes each).
 */
export async function importNet(): Promise<void> {
  netModule ??= await import("node:net");
}

const RESOLVED = Promise.resolve();
const IS_DENO = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";

function tcpOrUnix(address: string | undefined, port: number | undefined, path: string): Addr {
  return address !== undefined && port !== undefined
    ? { transport: "tcp", hostname: address, port }
    : { transport: "unix", path };
}

// The local address of the last connection: the next one on the same
// listener almost always has the same, and shares the object (issue 29).
let lastLocal: Addr = { transport: "unix", path: "" };

/** The socket's local address, the same object as the last connection's where it is the same. */
function localOf(s: Net.Socket, path: string): Addr {
  const address = s.localAddress, port = s.localPort;
  const l = lastLocal;
  if (address !== undefined && port !== undefined) {
    if (l.transport === "tcp" && l.port === port && l.hostname === address) return l;
  } else if (l.transport === "unix" && l.path === path) return l;
  return (lastLocal = tcpOrUnix(address, port, path));
}

/**
 * node:net keeps what it asked the handle for (`_peername`, `_sockname`,
 * each an object and two strings) for as long as the socket lives; the Conn
 * has its own copy, so the socket need not (issue 29). Both are caches that
 * node:net fills again when asked (Node 22 to 26, and Deno's node:net).
 */
function dropAddressCaches(s: Net.Socket): void {
  const c = s as unknown as { _peername?: unknown; _sockname?: unknown };
  if (c._peername !== undefined) c._peername = undefined;
  if (c._sockname !== undefined) c._sockname = undefined;
}

/**
 * A non-blocking send(2) of `chunk` straight to a connected socket's fd:
 * the bytes the kernel took, or -1. Deno's shim passes one where FFI is
 * granted (see `fromSocket`).
 */
export type DirectSend = (fd: number, chunk: Uint8Array) => number;

/**
 * A node:net socket as a runtime-neutral Conn.
 *
 * In Deno it works around a bug of Deno 2.9's node:net: the first write to a
 * just-accepted connection whose peer has already sent FIN with no data (a
 * client that connected and shut down its side while the service started)
 * fails with EPIPE, the bytes lost. Deno's libuv emulation (poll_tcp_handle
 * in its uv_compat) writes through tokio, whose try_write is WouldBlock until
 * the reactor has reported the new socket ready, so the write is queued; the
 * next poll of the handle reads the EOF, stops reading, then, finding writes
 * queued and the handle not reading, peeks the socket, gets 0 and fails the
 * whole queue with EPIPE (denoland/deno#33860 reworked that peek upstream).
 * A write made once the reactor has reported the socket goes straight out.
 * No timer proves that: setTimeout(0), and 2 ms under load, fired before the
 * reactor turned in 7 to 17% of such connections, as did microtasks,
 * setImmediate and an async op. So the first write goes to the handle
 * itself, outside node:net's stream (`probe` below), while later writes wait:
 * its completion proves the reactor has turned, and an EPIPE there means the
 * bytes are still unsent, and are sent again through node:net, which now
 * succeeds (or reports a real error). The first 'data' or 'end' proves the
 * turn as well. Where FFI is granted, first writes go out with send(2) on the
 * socket's own fd (`direct`), which never touches tokio's queue. The tests
 * "... greets and closes a peer that shut down its side before it started"
 * in test/listen.test.ts cover it.
 */
export function fromSocket(s: Net.Socket, localPath = "", direct?: DirectSend): Conn {
  return new NodeConn(s, localPath, direct);
}

// One set of listeners for every socket, found through the socket (a
// listener's `this`): an idle connection holds no closures of its own
// (issue 29). 'end' and 'close' come once, so on() rather than once(), which
// wraps each listener in a closure.
const kConn = Symbol("socket-activate.conn");
type Sock = Net.Socket & { [kConn]: NodeConn };
function onData(this: Sock, d: Buffer): void {
  this[kConn].queue!.push(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
}
function onEnd(this: Sock): void {
  this[kConn].queue!.end();
}
// Errors surface through the streams; without a listener an ECONNRESET
// would be thrown as an uncaught exception. The error is kept for a write
// that fails with it: its code (EPIPE, ECONNRESET) tells a peer that left
// from a bug (src/listen.ts's peerGone).
function onError(this: Sock, e: Error): void {
  const c = this[kConn];
  c.failure ??= e;
  c.queue?.end(e);
}
function onClose(this: Sock): void {
  const c = this[kConn];
  c.closedNow();
  c.queue?.end();
}

function writeNow(s: Net.Socket, chunk: Uint8Array): Promise<void> | undefined {
  if (s.destroyed) throw (s as Sock)[kConn].failure ?? new Error("The connection is closed");
  if (s.write(chunk)) return;
  return new Promise<void>((resolve, reject) => {
    const done = () => {
      s.off("drain", done);
      s.off("close", gone);
      resolve();
    };
    const gone = () => {
      s.off("drain", done);
      reject((s as Sock)[kConn].failure ?? new Error("The connection closed while writing"));
    };
    s.once("drain", done);
    s.once("close", gone);
  });
}
function writeChunk(s: Net.Socket, chunk: Uint8Array): Promise<void> {
  try {
    return writeNow(s, chunk) ?? RESOLVED;
  } catch (e) {
    return Promise.reject(e);
  }
}
const closeWriteNow = (s: Net.Socket) =>
  new Promise<void>((resolve) => {
    if (s.destroyed || s.writableEnded) return resolve();
    s.end(() => resolve());
  });

class NodeConn extends StreamConn {
  readonly s: Net.Socket;
  /** Received chunks, from the first iteration (in Deno from the start). */
  queue: PushQueue | undefined;
  /** The socket's first error. */
  failure: Error | undefined;
  // Read at once: once closed, node:net no longer knows them. The local
  // address may be the same object as other connections' (localOf).
  readonly remoteAddr: Addr;
  readonly localAddr: Addr;
  /** Deno only: the first write's workaround (see fromSocket), until it is no longer needed. */
  first: DenoFirstWrite | undefined;

  constructor(s: Net.Socket, localPath: string, direct: DirectSend | undefined) {
    super();
    this.s = s;
    this.remoteAddr = tcpOrUnix(s.remoteAddress, s.remotePort, "");
    this.localAddr = localOf(s, localPath);
    dropAddressCaches(s);
    (s as Sock)[kConn] = this;
    s.on("close", onClose);
    s.on("error", onError);
    if (IS_DENO) {
      this.first = new DenoFirstWrite(s, direct);
      // Deno 2.9.6 also loses the peer's FIN on such a connection when nothing
      // reads it at once: the poll above stops reading at the EOF, and a later
      // resume() never reports it, so a handler that writes before it reads (a
      // greeting) would wait for an 'end' that never comes. Reading from the
      // start takes the EOF as it happens, up to the queue's high-water mark of
      // chunks before it pauses.
      this.queue = this.#startQueue();
    }
  }

  #startQueue(): PushQueue {
    const q = new PushQueue(this.s);
    this.s.on("data", onData);
    this.s.on("end", onEnd);
    return q;
  }

  write(chunk: Uint8Array): Promise<void> {
    return this.first === undefined ? writeChunk(this.s, chunk) : this.first.write(chunk);
  }

  closeWrite(): Promise<void> {
    const s = this.s;
    return this.first === undefined ? closeWriteNow(s) : this.first.afterProbe(() => closeWriteNow(s));
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return (this.queue ??= this.#startQueue());
  }

  close(): void {
    this.s.destroy();
  }
}

/** Deno's first writes (see fromSocket). */
class DenoFirstWrite {
  readonly s: Net.Socket;
  readonly direct: DirectSend | undefined;
  readonly handle: DenoStreamHandle | null | undefined;
  /** Until the reactor is known to have turned for this socket. */
  fresh = true;
  /** The writes (and the closeWrite) made while the probe is in flight, in order; undefined when none is. */
  waiting: (() => void)[] | undefined;
  sendFd = -1;

  constructor(s: Net.Socket, direct: DirectSend | undefined) {
    this.s = s;
    this.direct = direct;
    this.handle = (s as unknown as { _handle?: DenoStreamHandle | null })._handle;
    const proven = () => {
      if (this.waiting === undefined) this.fresh = false;
    };
    s.prependOnceListener("data", proven);
    s.prependOnceListener("end", proven);
    // A closed connection fails what waits, through node:net.
    s.prependOnceListener("close", () => this.release());
    // Deno's TCPWrap and PipeWrap expose their fd here (for IPC).
    const h = this.handle as { fdForIpc?: () => number } | null | undefined;
    if (direct && typeof h?.fdForIpc === "function") {
      try {
        this.sendFd = h.fdForIpc();
      } catch { /* no fd: probe */ }
    }
  }

  release(): void {
    this.fresh = false;
    const run = this.waiting;
    this.waiting = undefined;
    if (run) { for (const f of run) f(); }
  }

  afterProbe(f: () => Promise<void>): Promise<void> {
    return this.waiting === undefined ? f() : new Promise<void>((resolve, reject) => {
      this.waiting!.push(() => f().then(resolve, reject));
    });
  }

  probe(chunk: Uint8Array): Promise<void> {
    let status: number;
    const done = new Promise<number>((resolve) => {
      try {
        status = this.handle!.writeBuffer({ oncomplete: resolve }, chunk);
      } catch {
        status = -1;
      }
      if (status !== 0) resolve(status);
    });
    this.waiting = [];
    return done.then((st) => {
      // 0: the bytes are out. Anything else: unsent (the peek's EPIPE), or
      // the connection is broken, which node:net's write then reports.
      const p = st === 0 ? RESOLVED : writeChunk(this.s, chunk);
      this.release();
      return p;
    });
  }

  write(chunk: Uint8Array): Promise<void> {
    const s = this.s;
    if (this.waiting !== undefined) return this.afterProbe(() => writeChunk(s, chunk));
    if (!this.fresh || s.destroyed || chunk.length === 0) return writeChunk(s, chunk);
    if (this.sendFd >= 0) {
      const n = this.direct!(this.sendFd, chunk);
      if (n === chunk.length) return RESOLVED;
      // The kernel's buffer is full or the send failed: the rest goes
      // through the probe, which reports any error.
      if (n > 0) chunk = chunk.subarray(n);
    }
    return typeof this.handle?.writeBuffer === "function" ? this.probe(chunk) : writeChunk(s, chunk);
  }
}

/** The part of Deno's native stream handle (TCPWrap, PipeWrap) `probe` uses. */
interface DenoStreamHandle {
  writeBuffer(req: { oncomplete: (status: number) => void }, data: Uint8Array): number;
}

function serverAddr(server: Net.Server): Addr | undefined {
  const a = server.address();
  if (a === null || typeof a !== "object" || !("port" in a)) {
    return typeof a === "string" ? { transport: "unix", path: a } : undefined;
  }
  return { transport: "tcp", hostname: a.address, port: a.port };
}

// deno-lint-ignore no-explicit-any
type Any = any;

function listenOn(
  options: Net.ListenOptions,
  onConn: (conn: Conn) => void,
  localPath: string,
  fd?: number,
  direct?: DirectSend,
): Promise<RawListener> {
  return new Promise((resolve, reject) => {
    // allowHalfOpen: a peer that shuts down its side may still be owed bytes
    // (an echo in flight); the Conn ends our side when its writable closes.
    const server = netm().createServer(
      { allowHalfOpen: true },
      (s) => onConn(fromSocket(s, localPath, direct)),
    );
    server.once("error", reject);
    const listening = () => {
      server.off("error", reject);
      // Node's handle exposes the fd it wraps; Deno's does not.
      const handleFd = (server as unknown as { _handle?: { fd?: number } })._handle?.fd;
      resolve({
        addr: serverAddr(server),
        sameFd: fd === undefined || typeof handleFd !== "number" || handleFd < 0
          ? undefined
          : handleFd === fd,
        // Deno's node:net server accepts eagerly and resets, on close(), the
        // connections it has taken from the kernel but not yet handed to
        // JavaScript (denoland/deno#36749 describes the eager accept): a
        // timer lets those reach onConn first, to be served in the drain.
        close: IS_DENO
          ? () => new Promise<void>((r) => setTimeout(() => r(void server.close()), 0))
          : () => void server.close(),
      });
    };
    const seqpacket = (options as { seqpacket?: number }).seqpacket;
    if (seqpacket !== undefined) {
      // Node: listen({ fd }) refuses a SOCK_SEQPACKET socket (EINVAL: libuv's
      // uv_guess_handle knows unix stream and datagram sockets only), but
      // libuv's pipe handle, which node:net builds unix sockets on, serves
      // one: it accepts, each read(2) is one packet and each write one packet
      // (writes queued behind a full socket may go out in one writev). The handle is given to the server as node:net's own
      // listen() gives it one (_handle, then _listen2: setupListenHandle).
      let h: Any;
      try {
        const { Pipe, constants } = (process as Any).binding("pipe_wrap");
        h = new Pipe(constants.SERVER);
      } catch (e) {
        reject(e);
        return;
      }
      const err = h.open(seqpacket);
      if (err !== 0) {
        reject(
          Object.assign(new Error(`opening the seqpacket fd failed (uv error ${err})`), { code: "EINVAL" }),
        );
        return;
      }
      (server as Any)._handle = h;
      server.once("listening", listening);
      (server as Any)._listen2(null, -1, -1, 511);
      return;
    }
    // A raw handle from openTcp (Node) is tried with listen() first, in the
    // same tick as node:net takes it over (no connection can arrive in
    // between): a UDP socket fails here, its fd still open for the error
    // message, where node:net would close it.
    const raw = options as unknown as { listen?: (backlog: number) => number };
    if (typeof raw.listen === "function") {
      const err = raw.listen(511);
      if (err !== 0) {
        reject(Object.assign(new Error(`listen failed (uv error ${err})`), { code: "EPROTOTYPE" }));
        return;
      }
    }
    server.listen(options, listening);
  });
}

/** nodeNet.listenFd with Deno's direct first writes (see fromSocket). */
export const listenFdDirect = (
  fd: number,
  onConn: (conn: Conn) => void,
  direct?: DirectSend,
): Promise<RawListener> => listenOn({ fd } as Net.ListenOptions, onConn, "", fd, direct);

/** nodeNet.connFd with Deno's direct first writes (see fromSocket). */
export const connFdDirect = (fd: number, direct?: DirectSend): Promise<Conn> => connOn(fd, undefined, direct);

/** The node:net adapter. */
export const nodeNet: NetAdapter = {
  // listen({ fd }) and listen(handle) are documented (server.listen(handle))
  // but missing from the types.
  listenFd: (fd, onConn, handle) => listenOn((handle ?? { fd }) as Net.ListenOptions, onConn, "", fd),
  listenAddr: (target: Target, onConn) => {
    if (!("path" in target)) {
      return listenOn({ port: target.port, host: target.hostname, exclusive: true }, onConn, "");
    }
    if (target.path.startsWith("@") && !abstractBindWorks()) {
      return Promise.reject(
        Object.assign(
          new Error(
            `Node ${process.versions.node} (libuv ${process.versions.uv}) binds abstract unix names padded ` +
              "with NUL bytes to 108, so no other program can connect (nodejs/node#50889, fixed in libuv 1.48): " +
              "use a path, or Node 22 or later",
          ),
          { code: "ENOTSUP" },
        ),
      );
    }
    return listenOn(
      { path: target.path.startsWith("@") ? "\0" + target.path.slice(1) : target.path },
      onConn,
      target.path,
    );
  },
  connFd: (fd, handle) => connOn(fd, handle),
};

function connOn(fd: number, handle?: unknown, direct?: DirectSend): Promise<Conn> {
  return new Promise((resolve, reject) => {
    try {
      const options = handle === undefined ? { fd } : { handle } as unknown as Net.SocketConstructorOpts;
      const s = new (netm().Socket)({ ...options, readable: true, writable: true, allowHalfOpen: true });
      // Deno: an Accept=yes connection meets the same bugs (see fromSocket).
      resolve(fromSocket(s, "", direct));
    } catch (e) {
      reject(e);
    }
  });
}

// Stream sockets through Bun.listen / Bun.connect. Bun.listen({ fd }) works
// (it is missing from Bun's type definitions) and starts about 3x faster than
// loading node:net in Bun. For Accept=yes Bun needs Bun.connect({ fd }):
// `new net.Socket({ fd })` in Bun closes the socket and resets the peer.
import type { Addr, Conn, NetAdapter, RawListener, Target } from "../../src/_net.ts";
import { PushQueue } from "../node_api/pushq.ts";
import { StreamConn } from "../../src/_streams.ts";

// deno-lint-ignore no-explicit-any
type Any = any;
const RESOLVED = Promise.resolve();
const B = (): Any => (globalThis as Any).Bun;

function addr(hostname: string | undefined, port: number | undefined, path: string): Addr {
  return hostname !== undefined && port !== undefined && port !== 0 && hostname !== ""
    ? { transport: "tcp", hostname, port }
    : { transport: "unix", path };
}

// The local address of the last connection: the next one on the same
// listener almost always has the same, and shares the object (issue 29).
let lastLocal: Addr = { transport: "unix", path: "" };

function sameAddr(a: Addr, b: Addr): boolean {
  if (a.transport === "unix" || b.transport === "unix") {
    return a.transport === "unix" && b.transport === "unix" && a.path === b.path;
  }
  return a.transport === b.transport && a.port === b.port && a.hostname === b.hostname;
}

function localOf(hostname: string | undefined, port: number | undefined, path: string): Addr {
  const a = addr(hostname, port, path);
  return sameAddr(a, lastLocal) ? lastLocal : (lastLocal = a);
}

// The connection is the socket's `data`, and one set of handlers serves every
// socket: an idle connection holds its fields and no closures (issue 29).
class BunConn extends StreamConn {
  readonly s: Any;
  /** Received chunks, until the iterator (or the readable) takes them. */
  readonly queue: PushQueue;
  isClosed = false;
  /** Whether this side closed or shut down (see gone). */
  closedHere = false;
  drained: (() => void) | undefined;
  // Read at once: once closed, Bun no longer knows them. The local address
  // may be the same object as other connections' (localOf).
  readonly remoteAddr: Addr;
  readonly localAddr: Addr;

  constructor(s: Any, localPath: string) {
    super();
    this.s = s;
    // Paused until the handler reads: the kernel buffers, not this process.
    this.queue = new PushQueue(this);
    this.remoteAddr = addr(s.remoteAddress, s.remotePort, "");
    this.localAddr = localOf(s.localAddress, s.localPort, localPath);
  }

  // The queue's source.
  pause(): void {
    this.s.pause();
  }
  resume(): void {
    this.s.resume();
  }
  destroy(): void {
    this.close();
  }

  close(): void {
    this.closedHere = true;
    this.s.terminate?.() ?? this.s.end();
  }

  // Bun reports a peer's reset as an end and a close without an error, and a
  // write to it as -1: a write that fails on a connection this side did not
  // close or shut down failed because the peer left, which is EPIPE (what
  // Node says), not a handler's bug.
  gone(): Error {
    return this.closedHere
      ? new Error("The connection is closed")
      : Object.assign(new Error("write EPIPE"), { code: "EPIPE", syscall: "write" });
  }

  // The whole chunk taken at once (the common case) settles without an
  // async function's extra promise hops: a few percent of echo throughput.
  write(chunk: Uint8Array): Promise<void> {
    if (this.isClosed) return Promise.reject(this.gone());
    const n = this.s.write(chunk);
    if (n === chunk.length) return RESOLVED;
    if (n < 0) return Promise.reject(this.gone());
    return this.#writeRest(chunk, n);
  }

  // Bun's write() may take only part of the chunk; the rest waits for drain.
  async #writeRest(chunk: Uint8Array, off: number): Promise<void> {
    while (off < chunk.length) {
      await new Promise<void>((r) => (this.drained = r));
      if (this.isClosed) throw this.gone();
      const n = this.s.write(chunk.subarray(off));
      if (n < 0) throw this.gone();
      off += n;
    }
  }

  closeWrite(): Promise<void> {
    this.closedHere = true;
    this.s.shutdown?.() ?? this.s.end();
    return RESOLVED;
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this.queue;
  }
}

const HANDLERS = {
  data(s: Any, d: Uint8Array) {
    // Bun reuses the buffer after this callback returns: copy it.
    (s.data as BunConn).queue.push(new Uint8Array(d));
  },
  drain(s: Any) {
    const st: BunConn = s.data;
    const d = st.drained;
    st.drained = undefined;
    d?.();
  },
  end(s: Any) {
    (s.data as BunConn).queue.end();
  },
  close(s: Any, error?: Error) {
    const st: BunConn | undefined = s.data;
    if (!st) return;
    st.isClosed = true;
    st.queue.end(error);
    st.drained?.();
    st.closedNow();
  },
  error(s: Any, error: Error) {
    (s.data as BunConn | undefined)?.queue.end(error);
  },
};

function handlers(onConn: ((conn: Conn) => void) | undefined, localPath: string) {
  return {
    ...HANDLERS,
    open(s: Any) {
      s.data = new BunConn(s, localPath);
      s.pause();
      onConn?.(s.data);
    },
  };
}

function listen(options: Any, onConn: (conn: Conn) => void, localPath: string, fd?: number): RawListener {
  const l = B().listen({ ...options, allowHalfOpen: true, socket: handlers(onConn, localPath) });
  return {
    addr: l.unix !== undefined
      ? { transport: "unix", path: l.unix }
      : typeof l.port === "number" && l.port > 0
      ? { transport: "tcp", hostname: l.hostname, port: l.port }
      : undefined,
    sameFd: fd === undefined || typeof l.fd !== "number" ? undefined : l.fd === fd,
    close: () => l.stop(false),
  };
}

/** The Bun.listen adapter. */
export const bunNet: NetAdapter = {
  listenFd: (fd, onConn) => Promise.resolve().then(() => listen({ fd }, onConn, "", fd)),
  listenAddr: (target: Target, onConn) =>
    Promise.resolve().then(() =>
      "path" in target
        ? listen(
          { unix: target.path.startsWith("@") ? "\0" + target.path.slice(1) : target.path },
          onConn,
          target.path,
        )
        : listen({ hostname: target.hostname, port: target.port }, onConn, "")
    ),
  connFd: async (fd) => {
    const s = await B().connect({ fd, allowHalfOpen: true, socket: handlers(undefined, "") });
    return s.data as BunConn;
  },
};

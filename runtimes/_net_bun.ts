// Stream sockets through Bun.listen / Bun.connect. Bun.listen({ fd }) works
// (it is missing from Bun's type definitions) and starts about 3x faster than
// loading node:net in Bun. For Accept=yes Bun needs Bun.connect({ fd }):
// `new net.Socket({ fd })` in Bun closes the socket and resets the peer.
import type { Addr, Conn, NetAdapter, RawListener, Target } from "../src/_net.ts";
import { PushQueue } from "./_pushq.ts";

// deno-lint-ignore no-explicit-any
type Any = any;
const B = (): Any => (globalThis as Any).Bun;

interface State {
  controller?: ReadableStreamDefaultController<Uint8Array>;
  /** Chunks for the async iterator. */
  queue?: PushQueue;
  ended: boolean;
  isClosed: boolean;
  discard?: boolean;
  pending: Uint8Array[];
  drained?: () => void;
  closedResolve: () => void;
  conn: Conn;
}

function addr(hostname: string | undefined, port: number | undefined, path: string): Addr {
  return hostname !== undefined && port !== undefined && port !== 0 && hostname !== ""
    ? { transport: "tcp", hostname, port }
    : { transport: "unix", path };
}

function makeConn(s: Any, localPath: string): State {
  let closedResolve!: () => void;
  const closed = new Promise<void>((r) => (closedResolve = r));
  const st: State = { ended: false, isClosed: false, pending: [], closedResolve, conn: undefined as unknown as Conn };
  let readable: ReadableStream<Uint8Array> | undefined;
  let writable: WritableStream<Uint8Array> | undefined;
  const write = async (chunk: Uint8Array): Promise<void> => {
    // Bun's write() may take only part of the chunk; the rest waits for drain.
    let off = 0;
    while (off < chunk.length) {
      if (st.isClosed) throw new Error("The connection is closed");
      const n = s.write(off === 0 ? chunk : chunk.subarray(off));
      if (n < 0) throw new Error("The connection is closed");
      off += n;
      if (off < chunk.length) await new Promise<void>((r) => (st.drained = r));
    }
  };
  const closeWrite = () => {
    s.shutdown?.() ?? s.end();
    return Promise.resolve();
  };
  st.conn = {
    get readable() {
      return (readable ??= new ReadableStream<Uint8Array>({
        start(c) {
          st.controller = c;
          for (const chunk of st.pending) c.enqueue(chunk);
          st.pending = [];
          if (st.ended) c.close();
        },
        pull() {
          s.resume();
        },
        cancel() {
          // Stop delivering; input from here on is discarded.
          st.discard = true;
          st.controller = undefined;
          s.resume();
        },
      }, { highWaterMark: 8 }));
    },
    get writable() {
      return (writable ??= new WritableStream<Uint8Array>({
        write,
        close: closeWrite,
        abort() {
          s.terminate?.() ?? s.end();
        },
      }));
    },
    write,
    closeWrite,
    [Symbol.asyncIterator]() {
      st.queue ??= new PushQueue(() => s.pause(), () => s.resume(), () => s.terminate?.() ?? s.end());
      if (st.ended || st.isClosed) st.queue.end();
      return st.queue.iterator();
    },
    remoteAddr: addr(s.remoteAddress, s.remotePort, ""),
    localAddr: addr(s.localAddress, s.localPort, localPath),
    close() {
      s.terminate?.() ?? s.end();
    },
    closed,
  };
  return st;
}

function handlers(onConn: ((conn: Conn) => void) | undefined, localPath: string) {
  return {
    open(s: Any) {
      s.data = makeConn(s, localPath);
      onConn?.(s.data.conn);
    },
    data(s: Any, d: Uint8Array) {
      const st: State = s.data;
      if (st.discard) return;
      // Bun reuses the buffer after this callback returns: copy it.
      const chunk = new Uint8Array(d);
      if (st.queue) {
        st.queue.push(chunk);
      } else if (st.controller) {
        st.controller.enqueue(chunk);
        if ((st.controller.desiredSize ?? 1) <= 0) s.pause();
      } else {
        st.pending.push(chunk);
        s.pause();
      }
    },
    drain(s: Any) {
      const st: State = s.data;
      const d = st.drained;
      st.drained = undefined;
      d?.();
    },
    end(s: Any) {
      const st: State = s.data;
      st.ended = true;
      st.queue?.end();
      try {
        st.controller?.close();
      } catch { /* cancelled */ }
    },
    close(s: Any, error?: Error) {
      const st: State | undefined = s.data;
      if (!st) return;
      st.isClosed = true;
      st.queue?.end(error);
      try {
        if (error) st.controller?.error(error);
        else st.controller?.close();
      } catch { /* closed */ }
      st.drained?.();
      st.closedResolve();
    },
    error(s: Any, error: Error) {
      const st: State | undefined = s.data;
      try {
        st?.controller?.error(error);
      } catch { /* closed */ }
    },
  };
}

function listen(options: Any, onConn: (conn: Conn) => void, localPath: string, fd?: number): RawListener {
  const l = B().listen({ ...options, allowHalfOpen: true, socket: handlers(onConn, localPath) });
  return {
    addr: l.unix !== undefined ? { transport: "unix", path: l.unix } : typeof l.port === "number" && l.port > 0
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
        ? listen({ unix: target.path.startsWith("@") ? "\0" + target.path.slice(1) : target.path }, onConn, target.path)
        : listen({ hostname: target.hostname, port: target.port }, onConn, "")
    ),
  connFd: async (fd) => {
    const s = await B().connect({ fd, allowHalfOpen: true, socket: handlers(undefined, "") });
    return (s.data as State).conn;
  },
};

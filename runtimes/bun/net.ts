// Stream sockets through Bun.listen / Bun.connect. Bun.listen({ fd }) works
// (it is missing from Bun's type definitions) and starts about 3x faster than
// loading node:net in Bun. For Accept=yes Bun needs Bun.connect({ fd }):
// `new net.Socket({ fd })` in Bun closes the socket and resets the peer.
import type { Addr, Conn, NetAdapter, RawListener, Target } from "../../src/_net.ts";
import { PushQueue } from "../node_api/pushq.ts";
import { withStreams } from "../../src/_streams.ts";

// deno-lint-ignore no-explicit-any
type Any = any;
const RESOLVED = Promise.resolve();
const B = (): Any => (globalThis as Any).Bun;

interface State {
  /** Received chunks, until the iterator (or the readable) takes them. */
  queue: PushQueue;
  isClosed: boolean;
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
  // Bun reports a peer's reset as an end and a close without an error, and a
  // write to it as -1: a write that fails on a connection this side did not
  // close or shut down failed because the peer left, which is EPIPE (what
  // Node says), not a handler's bug.
  let closedHere = false;
  const gone = () =>
    closedHere
      ? new Error("The connection is closed")
      : Object.assign(new Error("write EPIPE"), { code: "EPIPE", syscall: "write" });
  const close = () => {
    closedHere = true;
    return s.terminate?.() ?? s.end();
  };
  const st: State = {
    // Paused until the handler reads: the kernel buffers, not this process.
    queue: new PushQueue(() => s.pause(), () => s.resume(), close),
    isClosed: false,
    closedResolve,
    conn: undefined as unknown as Conn,
  };
  // Bun's write() may take only part of the chunk; the rest waits for drain.
  const writeRest = async (chunk: Uint8Array, off: number): Promise<void> => {
    while (off < chunk.length) {
      await new Promise<void>((r) => (st.drained = r));
      if (st.isClosed) throw gone();
      const n = s.write(chunk.subarray(off));
      if (n < 0) throw gone();
      off += n;
    }
  };
  // The whole chunk taken at once (the common case) settles without an
  // async function's extra promise hops: a few percent of echo throughput.
  const write = (chunk: Uint8Array): Promise<void> => {
    if (st.isClosed) return Promise.reject(gone());
    const n = s.write(chunk);
    if (n === chunk.length) return RESOLVED;
    if (n < 0) return Promise.reject(gone());
    return writeRest(chunk, n);
  };
  st.conn = withStreams({
    write,
    closeWrite() {
      closedHere = true;
      s.shutdown?.() ?? s.end();
      return Promise.resolve();
    },
    [Symbol.asyncIterator]: () => st.queue.iterator(),
    remoteAddr: addr(s.remoteAddress, s.remotePort, ""),
    localAddr: addr(s.localAddress, s.localPort, localPath),
    close,
    closed,
  });
  return st;
}

function handlers(onConn: ((conn: Conn) => void) | undefined, localPath: string) {
  return {
    open(s: Any) {
      s.data = makeConn(s, localPath);
      s.pause();
      onConn?.(s.data.conn);
    },
    data(s: Any, d: Uint8Array) {
      // Bun reuses the buffer after this callback returns: copy it.
      (s.data as State).queue.push(new Uint8Array(d));
    },
    drain(s: Any) {
      const st: State = s.data;
      const d = st.drained;
      st.drained = undefined;
      d?.();
    },
    end(s: Any) {
      (s.data as State).queue.end();
    },
    close(s: Any, error?: Error) {
      const st: State | undefined = s.data;
      if (!st) return;
      st.isClosed = true;
      st.queue.end(error);
      st.drained?.();
      st.closedResolve();
    },
    error(s: Any, error: Error) {
      (s.data as State | undefined)?.queue.end(error);
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
    return (s.data as State).conn;
  },
};

// Stream sockets through node:net: Node's own way in, and Deno's for
// inherited fds (Deno.listen cannot take an fd: denoland/deno#14006).
// Loaded on the first listen() that needs it, never at import: node:net costs
// Deno about 20 ms of start-up.
import type * as Net from "node:net";
import type { Addr, Conn, NetAdapter, RawListener, Target } from "../src/_net.ts";
import { PushQueue } from "./_pushq.ts";
import { withStreams } from "../src/_streams.ts";

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

/** A node:net socket as a runtime-neutral Conn. */
export function fromSocket(s: Net.Socket, localPath = ""): Conn {
  const closed = new Promise<void>((resolve) => s.once("close", () => resolve()));
  // Errors surface through the streams; without a listener an ECONNRESET
  // would be thrown as an uncaught exception.
  s.on("error", () => {});
  let queue: PushQueue | undefined;
  const write = (chunk: Uint8Array): Promise<void> | undefined => {
    if (s.destroyed) throw new Error("The connection is closed");
    if (s.write(chunk)) return;
    return new Promise<void>((resolve, reject) => {
      const done = () => {
        s.off("drain", done);
        s.off("close", gone);
        resolve();
      };
      const gone = () => {
        s.off("drain", done);
        reject(new Error("The connection closed while writing"));
      };
      s.once("drain", done);
      s.once("close", gone);
    });
  };
  const closeWrite = () =>
    new Promise<void>((resolve) => {
      if (s.destroyed || s.writableEnded) return resolve();
      s.end(() => resolve());
    });
  return withStreams({
    write: (chunk) => {
      try {
        return write(chunk) ?? RESOLVED;
      } catch (e) {
        return Promise.reject(e);
      }
    },
    closeWrite,
    [Symbol.asyncIterator]() {
      if (queue === undefined) {
        const q = (queue = new PushQueue(() => s.pause(), () => s.resume(), () => s.destroy()));
        s.on("data", (d: Buffer) => q.push(new Uint8Array(d.buffer, d.byteOffset, d.byteLength)));
        s.once("end", () => q.end());
        s.once("error", (e) => q.end(e));
        s.once("close", () => q.end());
      }
      return queue.iterator();
    },
    remoteAddr: tcpOrUnix(s.remoteAddress, s.remotePort, ""),
    localAddr: tcpOrUnix(s.localAddress, s.localPort, localPath),
    close() {
      s.destroy();
    },
    closed,
  });
}

function serverAddr(server: Net.Server): Addr | undefined {
  const a = server.address();
  if (a === null || typeof a !== "object" || !("port" in a)) {
    return typeof a === "string" ? { transport: "unix", path: a } : undefined;
  }
  return { transport: "tcp", hostname: a.address, port: a.port };
}

function listenOn(
  options: Net.ListenOptions,
  onConn: (conn: Conn) => void,
  localPath: string,
  fd?: number,
): Promise<RawListener> {
  // Connections accepted but not yet handed to onConn (Deno's deferral below):
  // close() waits for them, they belong to the drain.
  let inFlight = 0;
  let delivered: (() => void) | undefined;
  return new Promise((resolve, reject) => {
    // allowHalfOpen: a peer that shuts down its side may still be owed bytes
    // (an echo in flight); the Conn ends our side when its writable closes.
    const server = netm().createServer({ allowHalfOpen: true }, (s) => {
      // Deno 2.9.6: the first write to a connection whose peer has already
      // sent FIN with no data (a client that connected and shut down its
      // side while the service started) fails with EPIPE, the bytes lost.
      // Deno's libuv emulation writes through tokio, whose try_write is
      // WouldBlock until the reactor has reported the new socket writable, so
      // the write is queued; the next poll of the handle (uv_compat
      // poll_tcp_handle) reads the EOF, stops reading, then, finding writes
      // queued and the handle not reading, peeks the socket, gets 0 and fails
      // the whole queue with EPIPE: strace shows no write(2) at all.
      // pauseOnConnect, microtasks, setImmediate and an async op (Deno.stat)
      // all lose the bytes; only a timer, which lets the reactor turn before
      // the write, makes the first try_write succeed (denoland/deno#33860
      // reworked that peek upstream). It costs about 2 ms per connection:
      // Deno's timers fire no sooner than that (setTimeout(0) measured 2.1 ms).
      // Test "listen() serves two named sockets at once" covers it.
      if (IS_DENO) {
        inFlight++;
        setTimeout(() => {
          onConn(fromSocket(s, localPath));
          if (--inFlight === 0) delivered?.();
        }, 0);
      } else onConn(fromSocket(s, localPath));
    });
    server.once("error", reject);
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
    server.listen(options, () => {
      server.off("error", reject);
      // Node's handle exposes the fd it wraps; Deno's does not.
      const handleFd = (server as unknown as { _handle?: { fd?: number } })._handle?.fd;
      resolve({
        addr: serverAddr(server),
        sameFd: fd === undefined || typeof handleFd !== "number" || handleFd < 0
          ? undefined
          : handleFd === fd,
        close: () => {
          server.close();
          return inFlight === 0 ? undefined : new Promise<void>((r) => (delivered = r));
        },
      });
    });
  });
}

function abstractBindWorks(): boolean {
  if (IS_DENO) return true;
  const [major, minor] = (process.versions.uv ?? "0.0").split(".").map(Number);
  return major > 1 || (major === 1 && minor >= 48);
}

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
  connFd: (fd, handle) =>
    new Promise((resolve, reject) => {
      try {
        const options = handle === undefined ? { fd } : { handle } as unknown as Net.SocketConstructorOpts;
        resolve(
          fromSocket(
            new (netm().Socket)({ ...options, readable: true, writable: true, allowHalfOpen: true }),
          ),
        );
      } catch (e) {
        reject(e);
      }
    }),
};

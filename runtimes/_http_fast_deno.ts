// Deno's own HTTP server (hyper, the engine of Deno.serve) on connections
// accepted from an inherited fd: about 2x the requests/s of node:http in Deno
// (bench/http.mjs).
//
// Why internals: Deno.serve and Deno.listen take no fd and serve on
// 0.0.0.0:8000 when given one (denoland/deno#14006, #6529), and no public API
// turns an fd or a node:net socket into a Deno.Conn. So node:net accepts on
// the fd (it takes fds), each accepted socket's TCP stream is taken out of
// node:net (`TCPWrap.prototype.takeStream()`, which returns the stream's
// resource id) and given to `Deno[Deno.internal].serveHttpOnConnection`,
// the engine of Deno.serve for one connection (exposed internally for
// node:http2, denoland/deno#19331). Both are private: every
// one is feature-detected, and serveFast() answers null (the caller then
// serves through node:http) when one is missing, before anything is accepted.
//
// Not here, so null: TLS (no server-side TLS on an accepted Deno connection
// exists, public or internal) and unix sockets (node:net's PipeWrap in Deno
// has no takeStream).
import type * as Net from "node:net";
import type { Addr, RawListener } from "../src/_net.ts";
import type { FastServeOptions, FastServer, ServeHandler, ServeInfo } from "../src/_http.ts";
import { callHandler, tcpAddr } from "./_http_fast.ts";

// deno-lint-ignore no-explicit-any
type Any = any;

/** The private serveHttpOnConnection(conn, signal, handler, onError, onListen). */
type ServeOnConnection = (
  conn: unknown,
  signal: AbortSignal | undefined,
  handler: (req: Request, info: { completed: Promise<void> }) => Response | Promise<Response>,
  onError: (error: unknown) => Response,
  onListen: () => void,
) => { finished: Promise<void>; shutdown(): Promise<void> };

interface Internals {
  serveOn: ServeOnConnection;
  /** The key under which Deno's resources keep their id (core.internalRidSymbol). */
  rid: symbol;
  /** Closes a resource (core.close). */
  closeRid: (rid: number) => void;
}

/** The internals, or the name of the one that is missing. */
function internals(): Internals | string {
  const D = (globalThis as Any).Deno;
  if (D === undefined) return "Deno";
  const inner = D.internal === undefined ? undefined : D[D.internal];
  const serveOn = inner?.serveHttpOnConnection;
  // Five parameters: (conn, signal, handler, onError, onListen), as in 2.9.
  if (typeof serveOn !== "function" || serveOn.length !== 5) {
    return "Deno[Deno.internal].serveHttpOnConnection(conn, signal, handler, onError, onListen)";
  }
  // serveHttpOnConnection reads the connection's resource id through this
  // symbol, as it does from a Deno.Conn.
  const rid = inner.core?.internalRidSymbol;
  if (typeof rid !== "symbol") return "Deno[Deno.internal].core.internalRidSymbol";
  const closeRid = inner.core.close;
  if (typeof closeRid !== "function") return "Deno[Deno.internal].core.close";
  // process.binding() names node:net's TCP handle class without opening a
  // socket: the check runs before the fd is touched.
  let tcp: Any;
  try {
    tcp = (process as Any).binding("tcp_wrap")?.TCP;
  } catch {
    return "process.binding('tcp_wrap')";
  }
  if (typeof tcp?.prototype?.takeStream !== "function") return "TCPWrap.prototype.takeStream";
  return { serveOn, rid, closeRid: (r: number) => closeRid.call(inner.core, r) };
}

/** Why serveFast() would answer null in this process, or undefined when it would serve. */
export function unavailable(options: Pick<FastServeOptions, "tls" | "transport">): string | undefined {
  if (options.tls !== undefined) return "TLS";
  if (options.transport !== "tcp") return "a unix socket";
  const i = internals();
  return typeof i === "string" ? `${i} is missing` : undefined;
}

class Info implements ServeInfo {
  constructor(readonly remoteAddr: Addr, private readonly inner: { completed: Promise<void> }) {}
  get completed(): Promise<void> {
    return this.inner.completed;
  }
}

function onDenoError(error: unknown): Response {
  // What the handler returned was not a Response, or Deno failed around it.
  console.error("socket-activate: serving a request failed:", error);
  return new Response("Internal Server Error", { status: 500 });
}

/**
 * Serves `handler` with Deno's native HTTP server on the listening TCP socket
 * `fd`; null (nothing touched) where the internals are missing, for TLS and
 * for unix sockets.
 */
export async function serveFast(
  fd: number,
  handler: ServeHandler,
  options: FastServeOptions,
): Promise<FastServer | null> {
  if (unavailable(options) !== undefined) return null;
  const { serveOn, rid: ridKey, closeRid } = internals() as Internals;
  const net = (process as Any).getBuiltinModule("node:net") as typeof Net;
  const onError = options.onError;
  const abort = new AbortController();
  const open = new Set<{ finished: Promise<void>; shutdown(): Promise<void> }>();
  let closing: Promise<void> | undefined;

  const accept = (sock: Net.Socket) => {
    // The addresses first: once the stream is taken, node:net cannot ask.
    const remoteAddr = tcpAddr(sock.remoteAddress, sock.remotePort) ??
      { transport: "unix", path: "" } as Addr;
    const localAddr = tcpAddr(sock.localAddress, sock.localPort) ?? remoteAddr;
    let rid: unknown;
    try {
      rid = (sock as Any)._handle.takeStream();
    } catch (e) {
      sock.destroy();
      console.error("socket-activate: could not take a connection from node:net:", e);
      return;
    }
    // The stream now belongs to Deno's server: node:net's socket is only
    // forgotten (its server's connection count goes down), not closed.
    sock.destroy();
    if (typeof rid !== "number") return;
    let s: ReturnType<ServeOnConnection>;
    try {
      s = serveOn(
        // What it reads of a Deno.Conn (whose class is not exported): the
        // resource id and localAddr.
        { [ridKey]: rid, localAddr },
        abort.signal,
        (req, inner) => callHandler(handler, req, new Info(remoteAddr, inner), onError),
        onDenoError,
        () => {},
      );
    } catch (e) {
      // An internal that changed beyond what the detection saw: this
      // connection is lost, said once per connection, not silently.
      console.error("socket-activate: Deno's HTTP server refused a connection:", e);
      try {
        closeRid(rid);
      } catch { /* closed */ }
      return;
    }
    open.add(s);
    s.finished.then(() => open.delete(s), () => open.delete(s));
    if (closing !== undefined) s.shutdown().catch(() => {});
  };

  // pauseOnConnect: node:net must not start reading, or request bytes could
  // land in its buffer instead of hyper's.
  const server = net.createServer({ pauseOnConnect: true }, accept);
  const addr = await new Promise<Addr | undefined>((resolve, reject) => {
    server.once("error", reject);
    // listen({ fd }) is documented (server.listen(handle)) but not typed.
    server.listen({ fd } as unknown as Net.ListenOptions, () => {
      server.off("error", reject);
      const a = server.address();
      resolve(a !== null && typeof a === "object" ? tcpAddr(a.address, a.port) : undefined);
    });
  });

  const listener: RawListener = {
    addr,
    sameFd: undefined, // Deno's handle does not tell its fd: the guard compares addresses
    close: () => {
      if (server.listening) server.close();
    },
  };
  return {
    listener,
    get connections() {
      return open.size;
    },
    close(timeout: number): Promise<void> {
      if (closing !== undefined) return closing;
      listener.close();
      // shutdown(): hyper finishes the responses in flight and closes idle
      // keep-alive connections; the abort after `timeout` cuts the rest.
      const timer = setTimeout(() => abort.abort(), timeout);
      closing = Promise.allSettled([...open].map((s) => s.shutdown()))
        .then(() => Promise.allSettled([...open].map((s) => s.finished)))
        .then(() => clearTimeout(timer));
      return closing;
    },
  };
}

// Deno's own HTTP server (hyper, the engine of Deno.serve) on an inherited
// fd: about 2x the requests/s of node:http in Deno (bench/http.mjs).
//
// Why internals: Deno.serve and Deno.listen take no fd and serve on
// 0.0.0.0:8000 when given one (denoland/deno#14006, #6529), and no public API
// hands a Deno.Conn to Deno's HTTP server but Deno.serve's own listener. The
// private `Deno[Deno.internal].serveHttpOnConnection`, the engine of
// Deno.serve for one connection (exposed internally for node:http2,
// denoland/deno#19331), serves each connection, which comes from:
// - with FFI, a Deno.Listener that took the fd over (runtimes/_takeover.ts
//   through _net_deno.ts): TCP and unix sockets, and no node:net to load
//   (about 11 ms of start-up);
// - otherwise node:net, which takes fds: each accepted socket's TCP stream is
//   taken out of it (`TCPWrap.prototype.takeStream()`, which returns the
//   stream's resource id). TCP only: node:net's PipeWrap in Deno has no
//   takeStream.
// Every internal is feature-detected, and serveFast() answers null (the
// caller then serves through node:http) when one is missing, before anything
// is accepted. TLS only with the takeover, from a Deno.listenTls listener:
// no server-side TLS on an already accepted Deno connection exists, public or
// internal, so without FFI TLS gets null.
import type * as Net from "node:net";
import type { Addr, RawListener } from "../src/_net.ts";
import type { FastServeOptions, FastServer, ServeHandler, ServeInfo, TlsOptions } from "../src/_http.ts";
import { callHandler, failed, refusal, type Screen, screen, tcpAddr, viaHeaders } from "./_http_fast.ts";
import { authorityOf, BODY_TOO_LARGE, DEFAULT_MAX_REQUEST_BODY_SIZE } from "../src/_http_check.ts";
// A type only: the takeover comes in as serveFast()'s argument, so that this
// file, loaded on demand, shares no chunk of the npm build with the Deno entry.
import type { TakenListener } from "./_net_deno.ts";

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
  return { serveOn, rid, closeRid: (r: number) => closeRid.call(inner.core, r) };
}

/** What the node:net way needs besides, or the name of what is missing. */
function takeStream(): string | undefined {
  // process.binding() names node:net's TCP handle class without opening a
  // socket: the check runs before the fd is touched.
  let tcp: Any;
  try {
    tcp = (process as Any).binding("tcp_wrap")?.TCP;
  } catch {
    return "process.binding('tcp_wrap')";
  }
  return typeof tcp?.prototype?.takeStream === "function" ? undefined : "TCPWrap.prototype.takeStream";
}

/**
 * Why serveFast() would answer null in this process, or undefined when it
 * would serve (with FFI; without, a unix socket and TLS get null too).
 */
export function unavailable(): string | undefined {
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

let Counted: (new (url: string, init: RequestInit, of: Request) => Request) | undefined;

/**
 * A Request whose signal is another's, read only when asked for: Deno warns
 * once about its legacy abort behaviour for every request whose signal was
 * read, and reading it costs an op.
 */
function countedClass(): new (url: string, init: RequestInit, of: Request) => Request {
  return class extends Request {
    #of: Request;
    constructor(url: string, init: RequestInit, of: Request) {
      super(url, init);
      this.#of = of;
    }
    override get signal(): AbortSignal {
      return this.#of.signal;
    }
  };
}

/**
 * A copy of `request` whose body errors past `limit` bytes, calling `over`
 * first: for a body of unknown length (chunked, or HTTP/2 without
 * content-length), since Deno's server takes no limit of its own.
 */
function limited(request: Request, limit: number, over: () => void): Request {
  let seen = 0;
  const body = request.body!.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, c) {
        seen += chunk.byteLength;
        if (seen <= limit) return c.enqueue(chunk);
        over();
        c.error(new RangeError(BODY_TOO_LARGE));
      },
    }),
  );
  const init = { method: request.method, headers: request.headers, body, duplex: "half" };
  return new (Counted ??= countedClass())(request.url, init as RequestInit, request);
}

/**
 * A request header the cheap way: Deno's server Request keeps its inner
 * request (under a symbol described "request") whose header(name) asks hyper
 * for that one header, where `request.headers` first builds a Headers object
 * for the lot, about half the cost of the Host check of src/_http_check.ts
 * on a handler that reads nothing else. Found on the first request and
 * checked; `request.headers` where it is not there.
 */
function headerReader(): (request: Request, name: string) => string | null {
  let read: ((request: Request, name: string) => string | null) | undefined;
  return (request, name) => {
    if (read === undefined) {
      const sym = Object.getOwnPropertySymbols(request).find((s) => s.description === "request");
      const inner = sym === undefined ? undefined : (request as Any)[sym];
      read = typeof inner?.header === "function" && inner.header("host") === request.headers.get("host")
        ? (r, n) => (r as Any)[sym!].header(n)
        : viaHeaders;
    }
    return read(request, name);
  };
}

/** Whether hyper finds the request body unread when a refusal is out (and says `connection: close` then). */
function unread(req: Request, sc: Screen): boolean {
  const length = sc.header(req, "content-length");
  return (length !== null && length !== "0") || sc.header(req, "transfer-encoding") !== null;
}

/**
 * The handler as Deno's server calls it for one connection, behind the
 * checks of src/_http_check.ts: a request they refuse never reaches
 * `handler`, and a body above the limit gets 413 and `close` (the
 * connection) once the answer is out.
 */
function guarded(
  handler: ServeHandler,
  options: FastServeOptions,
  sc: Screen,
  remoteAddr: Addr,
  close: () => void,
): (req: Request, inner: { completed: Promise<void> }) => Response | Promise<Response> {
  const limit = options.maxRequestBodySize ?? DEFAULT_MAX_REQUEST_BODY_SIZE;
  const onError = options.onError;
  const tls = options.tls !== undefined;
  // The connection is cut once the refusal is out. `completed` settles as
  // the answer is handed to hyper, before it is written: the cut comes a
  // little later.
  const later = () => void setTimeout(close, 100);
  const refuse = (inner: { completed: Promise<void> }, status: number, unread: boolean) => {
    inner.completed.then(later, later);
    return refusal(status, unread);
  };
  return (req, inner) => {
    const status = screen(req, sc);
    if (status !== 0) return refuse(inner, status, unread(req, sc));
    const info = new Info(remoteAddr, inner);
    const m = req.method;
    // Deno gives GET and HEAD no body.
    if (m === "GET" || m === "HEAD" || limit === Infinity) return callHandler(handler, req, info, onError);
    const length = sc.header(req, "content-length");
    if (length !== null) {
      return Number(length) > limit ? refuse(inner, 413, true) : callHandler(handler, req, info, onError);
    }
    // Without it, HTTP/1.1 has a body only when chunked; HTTP/2 (TLS here)
    // may have one of any length.
    if (!tls && sc.header(req, "transfer-encoding") === null) {
      return callHandler(handler, req, info, onError);
    }
    if (req.body === null) return callHandler(handler, req, info, onError);
    let over = false;
    let counted: Request;
    try {
      counted = limited(req, limit, () => (over = true));
    } catch {
      return refuse(inner, 400, true); // a method Deno's Request will not carry with a body ("get", say)
    }
    const after = (r: Response) => {
      if (!over) return r;
      r.body?.cancel().catch(() => {});
      return refuse(inner, 413, false);
    };
    // The handler's read rejected at the limit: the client's doing, not
    // an error of the handler's to log or give onError.
    const onLimit = (e: unknown, r: Request) => over ? refuse(inner, 413, false) : failed(e, r, onError);
    const r = callHandler(handler, counted, info, onLimit);
    return r instanceof Response ? after(r) : r.then(after);
  };
}

/** Connections served one by one, and the FastServer that drains them. */
function connections(i: Internals, handler: ServeHandler, options: FastServeOptions) {
  const abort = new AbortController();
  const open = new Set<{ finished: Promise<void>; shutdown(): Promise<void> }>();
  let closing: Promise<void> | undefined;
  // The listening address is known once server() is called, before the
  // first connection is served.
  const sc: Screen = {
    prefix: options.tls ? "https://" : "http://",
    own: "localhost",
    header: headerReader(),
    parsed: false,
    last: "",
  };
  return {
    /** Serves one connection: a Deno.Conn, or what it reads of one. */
    serve(conn: unknown, remoteAddr: Addr, rid: number): void {
      let s: ReturnType<ServeOnConnection>;
      // A signal of this connection's own, so that a 413 can close it (hyper
      // would read a refused body to its end first, however long), which the
      // server's abort (the drain's deadline) reaches while the connection
      // lives. Not after: Deno's listener then cancels a closed resource,
      // and its BadResource is an uncaught exception that ends the process.
      const own = new AbortController();
      const follow = () => own.abort();
      abort.signal.addEventListener("abort", follow, { once: true });
      let live = true;
      // (Not once the drain has begun: Deno's graceful close has taken the
      // resource, and a cancel would find it gone.)
      const cut = () => live && closing === undefined && own.abort();
      try {
        s = i.serveOn(
          conn,
          own.signal,
          guarded(handler, options, sc, remoteAddr, cut),
          onDenoError,
          () => {},
        );
      } catch (e) {
        abort.signal.removeEventListener("abort", follow);
        // An internal that changed beyond what the detection saw: this
        // connection is lost, said once per connection, not silently.
        console.error("socket-activate: Deno's HTTP server refused a connection:", e);
        try {
          i.closeRid(rid);
        } catch { /* closed */ }
        return;
      }
      open.add(s);
      // Settled in the microtask after Deno closes the resource: no timer
      // (the cut, the drain's deadline) can come in between.
      const gone = () => {
        live = false;
        abort.signal.removeEventListener("abort", follow);
        open.delete(s);
      };
      s.finished.then(gone, gone);
      if (closing !== undefined) s.shutdown().catch(() => {});
    },
    server(listener: RawListener): FastServer {
      const a = listener.addr;
      sc.own = authorityOf(a);
      // Deno's stand-in for a missing Host on TCP (a unix socket gets http+unix://).
      if (a?.transport === "tcp") sc.fallback = `localhost:${a.port}`;
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
    },
  };
}

function denoAddr(a: Any): Addr {
  return a?.transport === "tcp"
    ? { transport: "tcp", hostname: a.hostname, port: a.port }
    : { transport: "unix", path: a?.path ?? "" };
}

/** Serves on a Deno listener that took the fd over: Deno.Conns, accepted natively. */
function serveTaken(
  t: TakenListener,
  i: Internals,
  handler: ServeHandler,
  options: FastServeOptions,
): FastServer {
  const conns = connections(i, handler, options);
  (async () => {
    for (;;) {
      let c: Any;
      try {
        c = await t.listener.accept();
      } catch {
        return; // the listener was closed
      }
      conns.serve(c, denoAddr(c.remoteAddr), c[i.rid]);
    }
  })();
  return conns.server({ addr: t.addr, sameFd: true, close: t.close });
}

/**
 * Serves `handler` with Deno's native HTTP server on the listening socket
 * `fd`; null (nothing touched) where the internals are missing, and for TLS
 * or a unix socket that `takeOver` (_net_deno.ts's takeOverListener on `fd`
 * with the TLS options, where FFI is granted) cannot put under a Deno
 * listener (a Deno.listenTls listener for TLS, TCP only).
 */
export async function serveFast(
  fd: number,
  handler: ServeHandler,
  options: FastServeOptions,
  takeOver: (tls: TlsOptions | undefined) => TakenListener | undefined = () => undefined,
): Promise<FastServer | null> {
  if (unavailable() !== undefined) return null;
  const i = internals() as Internals;
  const taken = takeOver(options.tls);
  if (taken !== undefined) {
    // Never plain HTTP on a socket asked to speak TLS, nor the reverse.
    if (taken.tls !== (options.tls !== undefined)) {
      taken.close();
      throw new Error(
        `socket-activate: internal error: a ${taken.tls ? "TLS" : "plain"} listener for ${
          options.tls ? "HTTPS" : "HTTP"
        }`,
      );
    }
    return serveTaken(taken, i, handler, options);
  }
  // node:net's way has no TLS: a taken socket is only a TCP stream.
  if (options.tls !== undefined || options.transport !== "tcp" || takeStream() !== undefined) return null;
  const net = (process as Any).getBuiltinModule("node:net") as typeof Net;
  const conns = connections(i, handler, options);

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
    // What serveHttpOnConnection reads of a Deno.Conn (whose class is not
    // exported): the resource id and localAddr.
    conns.serve({ [i.rid]: rid, localAddr }, remoteAddr, rid);
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

  return conns.server({
    addr,
    sameFd: undefined, // Deno's handle does not tell its fd: the guard compares addresses
    close: () => {
      if (server.listening) server.close();
    },
  });
}

// Deno's own HTTP server (hyper, the engine of Deno.serve) on an inherited
// fd: about 2x the requests/s of node:http in Deno (bench/http.mjs).
//
// Why internals: Deno.serve and Deno.listen take no fd and serve on
// 0.0.0.0:8000 when given one (denoland/deno#14006, #6529), and no public API
// hands a Deno.Conn to Deno's HTTP server but Deno.serve's own listener. The
// private `Deno[Deno.internal].serveHttpOnConnection`, the engine of
// Deno.serve for one connection (exposed internally for node:http2,
// denoland/deno#19331), serves each connection, which comes from:
// - with FFI, a Deno.Listener that took the fd over (runtimes/ffi/takeover.ts
//   through deno/net.ts): TCP and unix sockets, and no node:net to load
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
import type { Addr, RawListener } from "../../src/_net.ts";
import type { FastServeOptions, FastServer, ServeHandler, ServeInfo, TlsOptions } from "../../src/_http.ts";
import {
  callHandler,
  closingConnection,
  failed,
  refusal,
  type Screen,
  screen,
  tcpAddr,
  viaHeaders,
} from "../../src/_http_fast.ts";
import { authorityOf, BODY_TOO_LARGE, DEFAULT_MAX_REQUEST_BODY_SIZE } from "../../src/_http_check.ts";
import { UPGRADE, type Upgrader } from "../../src/_ws.ts";
import { denoUpgrader, goAway, type Upgraded } from "./ws.ts";
// A type only: the takeover comes in as serveFast()'s argument, so that this
// file, loaded on demand, shares no chunk of the npm build with the Deno entry.
import type { TakenListener } from "./net.ts";

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
  /**
   * The resource id the next resource will get: a cancel handle made and
   * closed (core.createCancelHandle), as ids only go up and no other
   * resource is made between two synchronous calls. Undefined where missing.
   */
  nextRid: (() => number) | undefined;
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
  const cancelHandle = inner.core.createCancelHandle;
  const nextRid = typeof cancelHandle === "function"
    ? () => {
      const r = cancelHandle.call(inner.core) as number;
      closeRid.call(inner.core, r);
      return r + 1;
    }
    : undefined;
  return { serveOn, rid, closeRid: (r: number) => closeRid.call(inner.core, r), nextRid };
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
  readonly remoteAddr: Addr;
  private readonly inner: { completed: Promise<void> };
  constructor(remoteAddr: Addr, inner: { completed: Promise<void> }) {
    this.remoteAddr = remoteAddr;
    this.inner = inner;
  }
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
  upgrader: Upgrader,
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
    (req as Any)[UPGRADE] = upgrader;
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

/** A connection being served, and how far its drain has gone. */
interface Open {
  served: ReturnType<ServeOnConnection>;
  /** Its own signal: aborted, Deno cancels this connection alone, at once. */
  abort: AbortController;
  /** Handlers of this connection that have not returned yet. */
  pending: number;
  /** Whether its graceful shutdown began (after which it cannot be cut). */
  shut: boolean;
  /** The resource id of its server (serveOn's), or -1 where it could not be known. */
  http: number;
  /** The WebSocket its request became (runtimes/deno/ws.ts), until it closes. */
  ws: WebSocket | undefined;
}

/**
 * Aborts `ac`, whose abort listener is Deno's: where Deno cancels a
 * connection whose resource is already gone, that listener throws
 * BadResource, which Deno reports as uncaught and exits 1 on. The error event
 * is dispatched synchronously within abort(), so it is stopped for this call
 * alone.
 */
function abortQuietly(ac: AbortController): void {
  const D = (globalThis as Any).Deno;
  const swallow = (e: Any) => {
    if (e?.error instanceof D.errors.BadResource) e.preventDefault();
  };
  globalThis.addEventListener("error", swallow);
  try {
    ac.abort();
  } finally {
    globalThis.removeEventListener("error", swallow);
  }
}

// How long close() waits, after cutting what was left at its deadline, for
// those connections to end: Deno ends a cancelled one within milliseconds.
const AFTER_CUT = 100;

/**
 * Connections served one by one, and the FastServer that drains them.
 *
 * The drain works around two things of Deno 2.9's HTTP server
 * (CallbackContext and serveHttpOn in ext/http/00_serve.ts). Its graceful
 * shutdown() (op_http_close) takes the connection's resource out of Deno's
 * table, and the abort listener it adds to the connection's signal cancels
 * through that resource: aborted after shutdown() began, or after the
 * connection ended, the listener throws BadResource, uncaught, and the
 * process exits 1 (`Deno.serve` with a `signal` does the same when aborted
 * after its shutdown()). So a connection is shut down gracefully only once
 * no handler of it is pending (hyper then finishes what is being sent and
 * closes it), and one whose handler is still running at the deadline is cut
 * through its own signal, which still works then. The signal is the
 * connection's own: Deno never removes the listener, so one signal for all
 * would keep one per connection ever served. A connection shut down but not
 * ended at the deadline (a response body still streaming) cannot be cut:
 * close() resolves without it.
 */
function connections(i: Internals, handler: ServeHandler, options: FastServeOptions) {
  const open = new Set<Open>();
  let closing: Promise<void> | undefined;
  let drained: (() => void) | undefined;
  const shutDown = (c: Open) => {
    if (c.shut) return;
    c.shut = true;
    c.served.shutdown().catch(() => {});
  };
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
      const c = { abort: new AbortController(), pending: 0, shut: false, http: -1, ws: undefined } as Open;
      const settled = () => {
        if (--c.pending === 0 && closing !== undefined) shutDown(c);
      };
      let live = true;
      // The guard's cut, for a refusal or a 413 (hyper would read a refused
      // body to its end first, however long): through this connection's own
      // signal, and not once its graceful shutdown began, which has taken
      // the resource the cancel goes through (see connections()).
      const cut = () => {
        if (live && !c.shut && closing === undefined) abortQuietly(c.abort);
      };
      const upgraded: Upgraded = {
        keep(ws) {
          if (c.http < 0) {
            throw new Error(
              "Cannot keep a WebSocket on serve()'s fast path in this Deno (no Deno[Deno.internal].core." +
                "createCancelHandle): set SOCKET_ACTIVATE_HTTP_FAST=0, and serve() takes node:http",
            );
          }
          // The connection's server, out of the resource table before its
          // HTTP ends: the shutdown that follows then finds nothing, and
          // leaves the WebSocket open (see runtimes/deno/ws.ts).
          try {
            i.closeRid(c.http);
          } catch { /* gone */ }
          c.http = -1;
          c.shut = true; // nothing of its server left to shut down or cut
          c.ws = ws;
          ws.addEventListener("close", () => {
            c.ws = undefined;
            if (!live) gone();
          });
          if (closing !== undefined) goAway(ws);
        },
      };
      const guard = guarded(handler, options, sc, remoteAddr, cut, denoUpgrader(upgraded));
      try {
        if (i.nextRid !== undefined) c.http = i.nextRid();
        c.served = i.serveOn(
          conn,
          c.abort.signal,
          (req, inner) => {
            const r = guard(req, inner);
            if (r instanceof Response) return closing === undefined ? r : closingConnection(r);
            c.pending++;
            return r.then((x) => {
              settled();
              return closing === undefined ? x : closingConnection(x);
            }, (e) => {
              settled();
              throw e;
            });
          },
          onDenoError,
          () => {},
        );
      } catch (e) {
        // An internal that changed beyond what the detection saw: this
        // connection is lost, said once per connection, not silently.
        console.error("socket-activate: Deno's HTTP server refused a connection:", e);
        try {
          i.closeRid(rid);
        } catch { /* closed */ }
        return;
      }
      open.add(c);
      const gone = () => {
        open.delete(c);
        if (open.size === 0) drained?.();
      };
      // A connection whose request became a WebSocket is counted (idleExit,
      // the drain) until the WebSocket closes.
      const ended = () => {
        live = false;
        if (c.ws === undefined) gone();
      };
      c.served.finished.then(ended, ended);
      if (closing !== undefined) shutDown(c);
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
          const deadline = Date.now() + timeout;
          // The listener's close settles once what was accepted before it has
          // been handed to serve() (serveTaken): only then does an empty
          // `open` mean drained. Bounded by the deadline all the same.
          const stopped = new Promise<void>((resolve) => {
            const t = setTimeout(resolve, timeout);
            Promise.resolve(listener.close()).then(() => {
              clearTimeout(t);
              resolve();
            });
          });
          closing = stopped.then(() =>
            new Promise<void>((resolve) => {
              if (open.size === 0) return resolve();
              for (const c of open) {
                if (c.ws !== undefined) goAway(c.ws);
                else if (c.pending === 0) shutDown(c);
              }
              const timer = setTimeout(() => {
                const cut = [...open].filter((c) => !c.shut);
                for (const c of cut) abortQuietly(c.abort);
                const late = setTimeout(resolve, AFTER_CUT);
                Promise.allSettled(cut.map((c) => c.served.finished)).then(() => {
                  clearTimeout(late);
                  resolve();
                });
              }, Math.max(0, deadline - Date.now()));
              drained = () => {
                clearTimeout(timer);
                resolve();
              };
            })
          );
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
  const loop = (async () => {
    for (;;) {
      let c: Any;
      try {
        // A taken-over listener's accept() rejects only once it is closed
        // (deno/net.ts): no client's failure ends this loop.
        c = await t.listener.accept();
      } catch {
        return; // the listener was closed
      }
      conns.serve(c, denoAddr(c.remoteAddr), c[i.rid]);
    }
  })();
  // Settles once the loop has ended: a connection Deno accepted just before
  // the close is served in the drain, not left unanswered by an exit.
  const close = () => {
    t.close();
    return loop;
  };
  return conns.server({ addr: t.addr, sameFd: true, close });
}

/**
 * Serves `handler` with Deno's native HTTP server on the listening socket
 * `fd`; null (nothing touched) where the internals are missing, and for TLS
 * or a unix socket that `takeOver` (deno/net.ts's takeOverListener on `fd`
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

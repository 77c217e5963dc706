// serve() and listenHttp() themselves, loaded on their first call (src/serve.ts):
// the one place that takes options to a listening server. What they use of
// the package's entry comes in as `ServeInternals` (see src/_http.ts).
import type { IncomingMessage, Server as HttpServer, ServerResponse } from "node:http";
import { ActivationError } from "./errors.ts";
import type {
  FastServer,
  HttpAdapter,
  HttpListening,
  ListenHttpOptions,
  ServeHandler,
  ServeInternals as Internals,
  ServeOptions,
  TlsOptions,
  TrackedSocket,
} from "./_http.ts";
import type { Adoption, Server } from "./listen.ts";
import type { Addr, Conn, RawListener } from "./_net.ts";
import { authorityOf, bodyLimit } from "./_http_check.ts";

function checkTls(tls: TlsOptions | undefined, where: string): void {
  if (tls === undefined) return;
  const ok = (v: unknown) => typeof v === "string" || v instanceof Uint8Array;
  if (tls === null || typeof tls !== "object" || !ok(tls.cert) || !ok(tls.key)) {
    throw new TypeError(
      `Cannot serve HTTPS with ${where}.tls = ${
        tls === null || typeof tls !== "object" ? String(tls) : `{ ${Object.keys(tls).join(", ")} }`
      }: give { cert, key }, each a PEM string or bytes`,
    );
  }
}

/**
 * Puts the HTTP server on the adopted fd, checked by the wrong-bind guard, or
 * (not activated: `a` undefined) on the fallback address.
 */
async function listenOn(
  i: Internals,
  http: HttpAdapter,
  server: HttpServer,
  a: Adoption | undefined,
  options: ListenHttpOptions | ServeOptions,
  tls: TlsOptions | undefined,
): Promise<{ l: RawListener; addr: Addr }> {
  let l: RawListener;
  if (a === undefined) {
    const target = i.fallbackTarget(options.fallback!);
    try {
      l = await http.listenAddr(server, target);
    } catch (e) {
      throw i.fallbackFailed(target, e);
    }
    return { l, addr: i.fallbackAddr(target, l) };
  }
  try {
    l = await http.listenFd(server, a.f.fd, a.handle, tls);
  } catch (e) {
    throw i.listenFailed(i.getRuntime(), a, e);
  }
  try {
    return { l, addr: i.verifyListener(a, l) };
  } catch (e) {
    l.close(); // a runtime that listened elsewhere must not go on serving there
    throw e;
  }
}

function acceptYes(i: Internals, a: Adoption, what: string): ActivationError {
  i.release(a.f.fd);
  return new ActivationError(
    "EISCONN",
    `fd ${a.f.fd} "${a.f.name}" is an Accept=yes connection, not a listening socket: ${what} serves a ` +
      "listening socket (Accept=no, the default in the .socket unit); serve one connection with listen()",
  );
}

/** @internal serve(), see src/serve.ts. */
export async function serveImpl(
  i: Internals,
  options: ServeOptions,
  handler: ServeHandler,
): Promise<Server> {
  const rt = i.getRuntime();
  if (typeof handler !== "function") {
    throw new TypeError(`Cannot serve with handler ${String(handler)}: give (request, info) => Response`);
  }
  checkTls(options.tls, "serve() options");
  if (options.idleExit !== undefined && !(options.idleExit > 0)) {
    throw new RangeError(`Cannot exit after ${options.idleExit} idle seconds: give a number above 0`);
  }
  i.checkSignals(options.signals, "serve() options");
  const maxRequestBodySize = bodyLimit(options.maxRequestBodySize);
  const a = i.adopt(rt, options);
  if (a === undefined) i.requireFallback(options.fallback);
  else if (a.mode === "connection") throw acceptYes(i, a, "serve()");
  // A runtime's own server first, where it has a fast path that takes the fd
  // (the seam: Runtime.serveFast). Not with idleExit: a fast server reports a
  // count of connections, not when each opens and closes. Not with
  // SOCKET_ACTIVATE_HTTP_FAST=0: the way out, without a code change, should
  // a runtime release change an internal in a way feature detection misses.
  const transport = a?.info.kind === "tcp" || a?.info.kind === "unix" ? a.info.kind : undefined;
  if (
    a !== undefined && transport !== undefined && rt.serveFast && options.idleExit === undefined &&
    rt.getEnv("SOCKET_ACTIVATE_HTTP_FAST") !== "0"
  ) {
    let fast: FastServer | null;
    try {
      fast = await rt.serveFast(a.f.fd, handler, {
        tls: options.tls,
        onError: options.onError,
        transport,
        maxRequestBodySize,
        websocket: options.websocket,
      });
    } catch (e) {
      throw i.listenFailed(rt, a, e);
    }
    if (fast !== null) return fastServer(i, a, fast, options);
  }
  const http = await rt.http();
  // Every connection goes through the Tracker, as a stream connection would:
  // it counts them, drains them on close, and drives idleExit and the watchdog.
  const tracker = new i.Tracker({ ...options, onError: undefined }, () => {});
  let closing = false;
  const tlsOutside = a !== undefined && options.tls !== undefined && http.needsTlsOutside;
  let authority = "localhost";
  const server = await http.fetchServer(handler, {
    tls: options.tls,
    tlsOutside,
    onError: options.onError,
    onSocket: (s: TrackedSocket) => tracker.accept(s as Conn),
    closing: () => closing,
    authority: () => authority,
    maxRequestBodySize,
  });
  const stop = (l: RawListener) => () => {
    closing = true;
    l.close();
    server.closeIdleConnections?.();
    // Open WebSockets get a close with 1001 (going away), not a cut (runtimes/node_api/upgrade.ts).
    // The symbol spelled out, not imported from src/_ws.ts: an import would put that file in a chunk of
    // its own, one more to load at every import of the package.
    (server as unknown as Record<symbol, (() => void) | undefined>)
      [Symbol.for("socket-activate.websockets.close")]?.();
  };
  const { l, addr } = await listenOn(i, http, server, a, options, tlsOutside ? options.tls : undefined);
  authority = authorityOf(addr);
  return tracker.server(a !== undefined, addr, a?.f, stop(l));
}

/** A fast path's server as a Server, checked by the same guard as node:http's. */
function fastServer(i: Internals, a: Adoption, fast: FastServer, options: ServeOptions): Server {
  let addr: Addr;
  try {
    addr = i.verifyListener(a, fast.listener);
  } catch (e) {
    fast.close(0).catch(() => {});
    throw e;
  }
  // The Tracker keeps no connections here: it runs the watchdog and settles
  // `finished` once the fast server has drained. The fast server's own drain
  // is the one the signals run.
  const tracker = new i.Tracker({ ...options, onError: undefined, signals: false }, () => {});
  const s = tracker.server(true, addr, a.f, () => {});
  const drainTimeout = options.drainTimeout ?? 10_000;
  let closed: Promise<void> | undefined;
  const close = () => (closed ??= fast.close(drainTimeout).then(() => tracker.close()).finally(unguard));
  const unguard = i.guard({ busy: () => fast.connections, close, drainTimeout }, options.signals);
  return {
    activated: true,
    addr,
    fd: a.f.fd,
    name: a.f.name,
    get connections() {
      return fast.connections;
    },
    close,
    finished: s.finished,
  };
}

function tlsFor(
  i: Internals,
  http: HttpAdapter,
  server: HttpServer,
  given: TlsOptions | undefined,
): TlsOptions | undefined {
  if (!http.needsTlsOutside) return undefined;
  const own = http.tlsOf?.(server);
  if (own === "none") return undefined;
  if (given !== undefined) return given;
  if (own === undefined) {
    throw new TypeError(
      `Cannot put this https.Server on an inherited fd in ${i.getRuntime().name}: the runtime must terminate ` +
        "TLS in front of it and cannot read its certificate back; pass listenHttp(server, { tls: { cert, key } })",
    );
  }
  return own;
}

/** @internal listenHttp(), see src/serve.ts. */
export async function listenHttpImpl(
  i: Internals,
  server: HttpServer,
  options: ListenHttpOptions,
): Promise<HttpListening> {
  const rt = i.getRuntime();
  checkTls(options.tls, "listenHttp() options");
  i.checkSignals(options.signals, "listenHttp() options");
  const a = i.adopt(rt, options);
  if (a === undefined) i.requireFallback(options.fallback);
  else if (a.mode === "connection") throw acceptYes(i, a, "listenHttp()");
  const http = await rt.http();
  let tls: TlsOptions | undefined;
  if (a !== undefined) {
    try {
      tls = tlsFor(i, http, server, options.tls);
    } catch (e) {
      i.release(a.f.fd);
      throw e;
    }
  }
  const { addr } = await listenOn(i, http, server, a, options, tls);
  drainOnSignal(i, server, options);
  return { activated: a !== undefined, fd: a?.f.fd, name: a?.f.name, addr };
}

/**
 * The default stop for a server of the caller's own: server.close(), the
 * requests in flight answered with `Connection: close`, idle keep-alive
 * connections closed, and at `drainTimeout` every connection left. The
 * program's own server.close() takes it out of the default stop.
 */
function drainOnSignal(i: Internals, server: HttpServer, options: ListenHttpOptions): void {
  if (options.signals === false) return;
  const inFlight = new Set<ServerResponse>();
  let closing = false;
  let settle = () => {};
  server.prependListener("request", (_req: IncomingMessage, res: ServerResponse) => {
    inFlight.add(res);
    if (closing) res.shouldKeepAlive = false;
    res.once("close", () => {
      inFlight.delete(res);
      if (closing) setImmediate(() => server.closeIdleConnections?.());
      settle();
    });
  });
  const drainTimeout = options.drainTimeout ?? 10_000;
  let closed: Promise<void> | undefined;
  const close = () =>
    closed ??= new Promise<void>((resolve) => {
      closing = true;
      for (const res of inFlight) if (!res.headersSent) res.shouldKeepAlive = false;
      const timer = setTimeout(() => {
        server.closeAllConnections?.();
        resolve();
      }, drainTimeout);
      // Bun calls close()'s callback before the requests in flight are answered: they are counted here.
      let stopped = false;
      settle = () => {
        if (!stopped || inFlight.size > 0) return;
        clearTimeout(timer);
        resolve();
      };
      server.close(() => {
        stopped = true;
        settle();
      });
      server.closeIdleConnections?.();
    });
  const unguard = i.guard({ busy: () => inFlight.size, close, drainTimeout }, options.signals);
  server.once("close", unguard);
}

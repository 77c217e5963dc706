import type { Server as HttpServer } from "node:http";
import { ActivationError } from "./errors.ts";
import type {
  FastServer,
  HttpAdapter,
  ServeErrorHandler,
  ServeHandler,
  TlsOptions,
  TrackedSocket,
} from "./_http.ts";
import {
  adopt,
  type Adoption,
  type Fallback,
  fallbackAddr,
  fallbackFailed,
  fallbackTarget,
  listenFailed,
  type ListenOptions,
  requireFallback,
  type Server,
  Tracker,
  verifyListener,
} from "./listen.ts";
import { release } from "./listen_fds.ts";
import type { Addr, Conn, RawListener } from "./_net.ts";
import { getRuntime } from "./_runtime.ts";

export type { ServeErrorHandler, ServeHandler, ServeInfo, TlsOptions } from "./_http.ts";

/**
 * Options for {@linkcode serve}: those of `listen()` and TLS.
 *
 * @example The fd named "web", HTTPS, 5 s to drain
 * ```ts
 * import { readFileSync } from "node:fs";
 * import { serve, type ServeOptions } from "@socket-activate/socket-activate";
 *
 * const options: ServeOptions = {
 *   name: "web",
 *   fallback: { port: 8443 },
 *   tls: { cert: readFileSync("cert.pem", "utf8"), key: readFileSync("key.pem", "utf8") },
 *   drainTimeout: 5000,
 * };
 * await serve(options, () => new Response("hello\n"));
 * ```
 */
export interface ServeOptions extends Omit<ListenOptions, "onError"> {
  /**
   * Serve HTTPS with this certificate and key (PEM, as strings or bytes)
   * instead of plain HTTP.
   *
   * @default {plain HTTP}
   */
  tls?: TlsOptions;
  /**
   * Called with an error the handler threw or rejected with; a Response it
   * returns is sent, otherwise the client gets a 500.
   *
   * @default {a line on stderr and a 500}
   */
  onError?: ServeErrorHandler;
}

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

function acceptYes(a: Adoption, what: string): ActivationError {
  release(a.f.fd);
  return new ActivationError(
    "EISCONN",
    `fd ${a.f.fd} "${a.f.name}" is an Accept=yes connection, not a listening socket: ${what} serves a ` +
      "listening socket (Accept=no, the default in the .socket unit); serve one connection with listen()",
  );
}

/**
 * Serves HTTP (HTTPS with `tls`) with a fetch-style handler, the signature of
 * `Deno.serve` and `Bun.serve`, on the socket the service manager passed, or
 * on `fallback` when the process was not activated. The same code runs under
 * Node, Deno and Bun, each through the way in that works there (node:http's
 * `listen({ fd })` in Node and Deno; in Bun a node:net or node:tls listener on
 * the fd handing its connections to node:http, since Bun's own HTTP servers
 * ignore the fd). On an activated TCP socket in Deno (and any socket, TLS
 * included, in Bun) it first puts the runtime's own server there (the engine
 * of `Deno.serve`, `Bun.serve` itself) through runtime internals, which
 * answers about 3.5 (Deno) and 5 (Bun) times as many requests a second;
 * where an internal is missing, with `idleExit`, or with
 * `SOCKET_ACTIVATE_HTTP_FAST=0` in the environment, it uses node:http.
 * Request and response bodies stream both ways with backpressure;
 * connections are kept alive; `close()` stops accepting, lets the requests in
 * flight finish (up to `drainTimeout`) and closes idle keep-alive
 * connections.
 *
 * @param options Which fd to serve, the fallback, TLS, the drain timeout.
 * @param handler Turns each request into a response.
 * @returns The server, once it accepts connections.
 * @throws {ActivationError} As {@linkcode listen} does, and `EISCONN` for an
 * Accept=yes connection.
 * @throws {TypeError} When `tls` is not `{ cert, key }`.
 *
 * @example Hello, activated or on port 8080
 * ```ts
 * import { serve } from "@socket-activate/socket-activate";
 *
 * const server = await serve({ fallback: { port: 8080 } }, (request, info) => {
 *   const { pathname } = new URL(request.url);
 *   return new Response(`hello ${pathname} from ${info.remoteAddr.transport}\n`);
 * });
 * console.error(`serving (activated: ${server.activated})`);
 * await server.close();
 * ```
 */
export async function serve(options: ServeOptions, handler: ServeHandler): Promise<Server> {
  const rt = getRuntime();
  if (typeof handler !== "function") {
    throw new TypeError(`Cannot serve with handler ${String(handler)}: give (request, info) => Response`);
  }
  checkTls(options.tls, "serve() options");
  if (options.idleExit !== undefined && !(options.idleExit > 0)) {
    throw new RangeError(`Cannot exit after ${options.idleExit} idle seconds: give a number above 0`);
  }
  const a = adopt(rt, options);
  if (a === undefined) requireFallback(options.fallback);
  else if (a.mode === "connection") throw acceptYes(a, "serve()");
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
      fast = await rt.serveFast(a.f.fd, handler, { tls: options.tls, onError: options.onError, transport });
    } catch (e) {
      throw listenFailed(rt, a, e);
    }
    if (fast !== null) return fastServer(a, fast, options);
  }
  const http = await rt.http();
  // Every connection goes through the Tracker, as a stream connection would:
  // it counts them, drains them on close, and drives idleExit and the watchdog.
  const tracker = new Tracker({ ...options, onError: undefined }, () => {});
  let closing = false;
  const tlsOutside = a !== undefined && options.tls !== undefined && http.needsTlsOutside;
  const server = await http.fetchServer(handler, {
    tls: options.tls,
    tlsOutside,
    onError: options.onError,
    onSocket: (s: TrackedSocket) => tracker.accept(s as Conn),
    closing: () => closing,
  });
  const stop = (l: RawListener) => () => {
    closing = true;
    l.close();
    server.closeIdleConnections?.();
  };
  if (a === undefined) {
    const target = fallbackTarget(options.fallback!);
    let l: RawListener;
    try {
      l = await http.listenAddr(server, target);
    } catch (e) {
      throw fallbackFailed(target, e);
    }
    return tracker.server(false, fallbackAddr(target, l), undefined, stop(l));
  }
  let l: RawListener;
  try {
    l = await http.listenFd(server, a.f.fd, a.handle, tlsOutside ? options.tls : undefined);
  } catch (e) {
    throw listenFailed(rt, a, e);
  }
  let addr: Addr;
  try {
    addr = verifyListener(a, l);
  } catch (e) {
    l.close(); // a runtime that listened elsewhere must not go on serving there
    throw e;
  }
  return tracker.server(true, addr, a.f, stop(l));
}

/** A fast path's server as a Server, checked by the same guard as node:http's. */
function fastServer(a: Adoption, fast: FastServer, options: ServeOptions): Server {
  let addr: Addr;
  try {
    addr = verifyListener(a, fast.listener);
  } catch (e) {
    fast.close(0).catch(() => {});
    throw e;
  }
  // The Tracker keeps no connections here: it runs the watchdog and settles
  // `finished` once the fast server has drained.
  const tracker = new Tracker({ ...options, onError: undefined }, () => {});
  const s = tracker.server(true, addr, a.f, () => {});
  let closed: Promise<void> | undefined;
  return {
    activated: true,
    addr,
    fd: a.f.fd,
    name: a.f.name,
    get connections() {
      return fast.connections;
    },
    close: () => (closed ??= fast.close(options.drainTimeout ?? 10_000).then(() => tracker.close())),
    finished: s.finished,
  };
}

/**
 * Options for {@linkcode listenHttp}.
 *
 * @example The fd named "web", else port 8080
 * ```ts
 * import { createServer } from "node:http";
 * import { listenHttp, type ListenHttpOptions } from "@socket-activate/socket-activate";
 *
 * const options: ListenHttpOptions = { name: "web", fallback: { port: 8080 } };
 * await listenHttp(createServer((_req, res) => res.end("hello\n")), options);
 * ```
 */
export interface ListenHttpOptions {
  /** The fd to serve by its LISTEN_FDNAMES name. @default {the only fd passed} */
  name?: string;
  /** The fd to serve by position (0 is fd 3). @default {the only fd passed} */
  index?: number;
  /** Where to listen when not activated. @default {none: an error} */
  fallback?: Fallback;
  /**
   * The certificate and key of an https.Server, for Bun, which must
   * terminate TLS in front of the server and cannot always read them back
   * from it. Ignored in Node and Deno, and for an http.Server.
   *
   * @default {read from the https.Server}
   */
  tls?: TlsOptions;
}

/**
 * Where a node:http server listens, and whether the socket came from the service manager.
 *
 * @example Say where
 * ```ts
 * import { createServer } from "node:http";
 * import { type HttpListening, listenHttp } from "@socket-activate/socket-activate";
 *
 * const where: HttpListening = await listenHttp(createServer((_req, res) => res.end("hi\n")), {
 *   fallback: { port: 8080 },
 * });
 * console.error(where.activated ? `activated fd ${where.fd} "${where.name}"` : "port 8080");
 * ```
 */
export interface HttpListening {
  /** True when the socket came from the service manager. */
  readonly activated: boolean;
  /** The inherited fd, when activated. */
  readonly fd: number | undefined;
  /** Its LISTEN_FDNAMES name, when activated. */
  readonly name: string | undefined;
  /** Where the server listens. */
  readonly addr: Addr;
}

function tlsFor(
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
      `Cannot put this https.Server on an inherited fd in ${getRuntime().name}: the runtime must terminate ` +
        "TLS in front of it and cannot read its certificate back; pass listenHttp(server, { tls: { cert, key } })",
    );
  }
  return own;
}

/**
 * Makes an existing node:http or node:https server (an Express or Koa app's,
 * Fastify's through `serverFactory`, Hono's through `@hono/node-server`'s
 * `createAdaptorServer`) accept on the socket the service manager passed, or
 * listen on `fallback` when the process was not activated, in Node, Deno and
 * Bun alike. Node and Deno use the server's own `listen({ fd })`; in Bun,
 * whose http.Server ignores the fd, a node:net listener (node:tls for an
 * https.Server, with the server's own certificate) accepts and hands each
 * connection over, and the server's `close()` stops it too. As with
 * {@linkcode listen}, a server that ends up anywhere but on the fd is closed
 * and an error thrown.
 *
 * @param server The server to put on the socket; not yet listening.
 * @param options Which fd, the fallback, and TLS for Bun.
 * @returns Where it listens.
 * @throws {ActivationError} As {@linkcode listen} does, and `EISCONN` for an
 * Accept=yes connection.
 * @throws {TypeError} In Bun, for an https.Server whose certificate cannot be
 * read back and no `tls` option.
 *
 * @example An Express-style node:http server, activated or on port 8080
 * ```ts
 * import { createServer } from "node:http";
 * import { listenHttp } from "@socket-activate/socket-activate";
 *
 * const server = createServer((_req, res) => res.end("hello\n"));
 * const { activated, addr } = await listenHttp(server, { fallback: { port: 8080 } });
 * console.error(`listening on ${JSON.stringify(addr)} (activated: ${activated})`);
 * server.close();
 * ```
 */
export async function listenHttp(
  server: HttpServer,
  options: ListenHttpOptions = {},
): Promise<HttpListening> {
  const rt = getRuntime();
  checkTls(options.tls, "listenHttp() options");
  const a = adopt(rt, options);
  if (a === undefined) requireFallback(options.fallback);
  else if (a.mode === "connection") throw acceptYes(a, "listenHttp()");
  const http = await rt.http();
  if (a === undefined) {
    const target = fallbackTarget(options.fallback!);
    let l: RawListener;
    try {
      l = await http.listenAddr(server, target);
    } catch (e) {
      throw fallbackFailed(target, e);
    }
    return { activated: false, fd: undefined, name: undefined, addr: fallbackAddr(target, l) };
  }
  let tls: TlsOptions | undefined;
  try {
    tls = tlsFor(http, server, options.tls);
  } catch (e) {
    release(a.f.fd);
    throw e;
  }
  let l: RawListener;
  try {
    l = await http.listenFd(server, a.f.fd, a.handle, tls);
  } catch (e) {
    throw listenFailed(rt, a, e);
  }
  let addr: Addr;
  try {
    addr = verifyListener(a, l);
  } catch (e) {
    l.close();
    throw e;
  }
  return { activated: true, fd: a.f.fd, name: a.f.name, addr };
}

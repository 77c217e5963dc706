import type { Server as HttpServer } from "node:http";
import type { ServeErrorHandler, ServeHandler, TlsOptions } from "./_http.ts";
import {
  adopt,
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
import type { Addr } from "./_net.ts";
import { getRuntime } from "./_runtime.ts";

export type { ServeErrorHandler, ServeHandler, ServeInfo, TlsOptions } from "./_http.ts";

const internals = {
  adopt,
  fallbackAddr,
  fallbackFailed,
  fallbackTarget,
  listenFailed,
  // An assertion function loses its narrowing as a property; none is needed.
  requireFallback: requireFallback as (fallback: Fallback | undefined) => void,
  Tracker,
  verifyListener,
  release,
  getRuntime,
};
/** @internal What src/_serve.ts uses of the entry's modules. */
export type Internals = typeof internals;

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
  /**
   * The largest request body, in bytes, the same in every runtime: a larger
   * `Content-Length` gets 413 before any of the body is read, and a chunked
   * body that grows past it gets 413 (the handler's read rejects with
   * `Request body exceeded maxRequestBodySize`); either way the connection
   * is closed. `Infinity` for no limit.
   *
   * @default {134217728 (128 MiB, as in Bun.serve)}
   */
  maxRequestBodySize?: number;
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
 * @throws {TypeError} When `tls` is not `{ cert, key }`, or `maxRequestBodySize` not a number.
 * @throws {RangeError} When `idleExit` is not above 0, or `maxRequestBodySize` not a whole number of
 * bytes (or Infinity).
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
  // The implementation loads on the first call: a program that serves no
  // HTTP does not pay for it at import.
  const { serveImpl } = await import("./_serve.ts");
  return serveImpl(internals, options, handler);
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
  const { listenHttpImpl } = await import("./_serve.ts");
  return listenHttpImpl(internals, server, options);
}

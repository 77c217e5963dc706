import type { Server as HttpServer } from "node:http";
import type {
  HttpListening,
  ListenHttpOptions,
  ServeHandler,
  ServeInternals,
  ServeOptions,
} from "./_http.ts";
import {
  adopt,
  fallbackAddr,
  fallbackFailed,
  fallbackTarget,
  listenFailed,
  requireFallback,
  type Server,
  Tracker,
  verifyListener,
} from "./listen.ts";
import { release } from "./listen_fds.ts";
import { getRuntime } from "./_runtime.ts";
import { checkSignals, guard } from "./_signals.ts";

export type {
  HttpListening,
  ListenHttpOptions,
  ServeErrorHandler,
  ServeHandler,
  ServeInfo,
  ServeOptions,
  TlsOptions,
} from "./_http.ts";

const internals: ServeInternals = {
  adopt,
  fallbackAddr,
  fallbackFailed,
  fallbackTarget,
  listenFailed,
  requireFallback,
  Tracker,
  verifyListener,
  release,
  getRuntime,
  guard,
  checkSignals,
};

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

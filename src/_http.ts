// The contract between src/serve.ts and each runtime's HTTP adapter
// (runtimes/node_api/http.ts for Node and Deno, runtimes/bun/http.ts for Bun).
// Every runtime serves HTTP through node:http, the one server API that takes
// an inherited fd somewhere in each of them; where they differ is how the
// server gets at the fd. An adapter is loaded on the first serve() or
// listenHttp(), never at import.
import type { Server as HttpServer } from "node:http";
import type * as Listen from "./listen.ts";
import type { Fallback, ListenOptions } from "./listen.ts";
import type { release } from "./listen_fds.ts";
import type { Addr, RawListener, Target } from "./_net.ts";
import type { getRuntime } from "./_runtime.ts";
import type * as Signals from "./_signals.ts";

/**
 * A certificate chain and its private key, PEM-encoded.
 *
 * @example HTTPS with files made by openssl
 * ```ts
 * import { readFileSync } from "node:fs";
 * import { serve, type TlsOptions } from "@socket-activate/socket-activate";
 *
 * const tls: TlsOptions = { cert: readFileSync("cert.pem", "utf8"), key: readFileSync("key.pem") };
 * await serve({ tls, fallback: { port: 8443 } }, () => new Response("hello over TLS\n"));
 * ```
 */
export interface TlsOptions {
  /** The certificate chain (PEM), leaf first. */
  cert: string | Uint8Array;
  /** The private key (PEM) of the leaf certificate. */
  key: string | Uint8Array;
}

/**
 * What a fetch-style handler gets beside the request.
 *
 * @example Log each client once its response is sent
 * ```ts
 * import { serve, type ServeInfo } from "@socket-activate/socket-activate";
 *
 * await serve({ fallback: { port: 8080 } }, (request: Request, info: ServeInfo) => {
 *   info.completed.then(() => console.error(`${request.method} ${request.url} for`, info.remoteAddr));
 *   return new Response("ok\n");
 * });
 * ```
 */
export interface ServeInfo {
  /** The client's address (`path: ""` over a unix socket). */
  readonly remoteAddr: Addr;
  /** Settles when the response has been sent or the client went away. */
  readonly completed: Promise<void>;
  /**
   * Bun's own WebSocket upgrade (`server.upgrade(request, { data, headers })`),
   * for the `websocket` handlers of serve()'s options; true once upgraded
   * (the handler then returns nothing). On serve()'s fast path in Bun only:
   * elsewhere it throws, saying so. Code for every runtime uses
   * `upgradeWebSocket()`.
   */
  readonly upgrade?: (request: Request, options?: { data?: unknown; headers?: HeadersInit }) => boolean;
}

/**
 * A fetch-style request handler: the signature of `Deno.serve` and `Bun.serve`.
 *
 * @example A handler of its own
 * ```ts
 * import { serve, type ServeHandler } from "@socket-activate/socket-activate";
 *
 * const echo: ServeHandler = (request) =>
 *   request.method === "POST" ? new Response(request.body) : new Response("POST something\n", { status: 405 });
 * await serve({ fallback: { port: 8080 } }, echo);
 * ```
 */
export type ServeHandler = (request: Request, info: ServeInfo) => Response | Promise<Response>;

/**
 * What happens to an error a {@linkcode ServeHandler} threw: a Response it
 * returns is sent, otherwise the client gets a 500.
 *
 * @example A JSON error body
 * ```ts
 * import { serve, type ServeErrorHandler } from "@socket-activate/socket-activate";
 *
 * const onError: ServeErrorHandler = (error) =>
 *   Response.json({ error: String(error) }, { status: 500 });
 * await serve({ fallback: { port: 8080 }, onError }, () => {
 *   throw new Error("not yet");
 * });
 * ```
 */
export type ServeErrorHandler = (error: unknown, request: Request) => Response | Promise<Response> | void;

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
  /**
   * Bun only: Bun.serve's `websocket` handlers and settings (`open`,
   * `message`, `close`, `maxPayloadLength`, `idleTimeout`, ...), for
   * sockets upgraded with `info.upgrade(request)`, as in Bun.serve. Ignored
   * by Node and Deno; code for every runtime uses `upgradeWebSocket()`.
   *
   * @default {none}
   */
  websocket?: Record<string, unknown>;
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
  /**
   * How long the stop on SIGTERM waits for requests in flight before it
   * closes their connections, in milliseconds.
   *
   * @default {10000}
   */
  drainTimeout?: number;
  /**
   * Stop on SIGTERM and SIGINT, as `listen()`'s option of the same name
   * says: `server.close()`, the requests in flight answered with
   * `Connection: close`, idle keep-alive connections closed, then exit 0.
   * The program's own `server.close()`, or `false`, leaves the signals alone.
   *
   * @default {true}
   */
  signals?: boolean;
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
 * @internal What src/_serve.ts uses of the entry's modules. It comes in as an
 * argument rather than through imports: importing listen.ts from _serve.ts
 * would make tsup split it out of the entry's chunk, one more file to load at
 * every import.
 */
export interface ServeInternals {
  adopt: typeof Listen.adopt;
  fallbackAddr: typeof Listen.fallbackAddr;
  fallbackFailed: typeof Listen.fallbackFailed;
  fallbackTarget: typeof Listen.fallbackTarget;
  listenFailed: typeof Listen.listenFailed;
  // An assertion function loses its narrowing as a property; none is needed.
  requireFallback: (fallback: Fallback | undefined) => void;
  Tracker: typeof Listen.Tracker;
  verifyListener: typeof Listen.verifyListener;
  release: typeof release;
  getRuntime: typeof getRuntime;
  guard: typeof Signals.guard;
  checkSignals: typeof Signals.checkSignals;
}

/** One accepted connection, as the drain logic sees it. */
export interface TrackedSocket {
  readonly closed: Promise<void>;
  close(): void;
}

/** What a fast path (`Runtime.serveFast`) is asked to serve. */
export interface FastServeOptions {
  /** HTTPS with this certificate and key; a fast path that cannot terminate TLS answers null. */
  tls?: TlsOptions;
  /** Answers a request whose handler threw; by default the error is logged and a 500 sent. */
  onError?: ServeErrorHandler;
  /** What the fd is, as adopt() found it. */
  transport: "tcp" | "unix";
  /** The request body limit in bytes (Infinity: none); see src/_http_check.ts. */
  maxRequestBodySize?: number;
  /** Bun's own `websocket` handlers (serve()'s option). */
  websocket?: Record<string, unknown>;
}

/**
 * A server from a runtime's fast path: its own native HTTP server put on the
 * fd through runtime internals. serve() checks `listener` with the same
 * wrong-bind guard as every other listener, and drains through `close`.
 */
export interface FastServer {
  /** Where it listens, for the wrong-bind guard. */
  listener: RawListener;
  /** Stops accepting, lets responses in flight finish within `timeout` ms, then closes. */
  close(timeout: number): Promise<void>;
  /** Open connections. */
  readonly connections: number;
}

/** What an adapter's fetchServer() is given beside the handler. */
export interface FetchServerOptions {
  tls?: TlsOptions;
  tlsOutside?: boolean;
  onError?: ServeErrorHandler;
  onSocket: (socket: TrackedSocket) => void;
  closing: () => boolean;
  /** The authority of a request without Host (the listening address, known once it listens). */
  authority?: () => string;
  /** The request body limit in bytes (Infinity: none). */
  maxRequestBodySize?: number;
}

/** An HTTP adapter: node:http servers and how each runtime puts one on an fd. */
export interface HttpAdapter {
  /**
   * An http.Server (https.Server with `tls`) running a fetch-style handler.
   * `onSocket` sees every connection, `closing` tells whether responses
   * should close their connection (a graceful close is under way).
   * `tlsOutside`: TLS is terminated in front of the server (Bun on an fd),
   * so it is an http.Server whose requests are https.
   */
  fetchServer(
    handler: ServeHandler,
    options: FetchServerOptions,
  ): Promise<HttpServer>;
  /**
   * Makes `server` accept on an inherited listening fd, the way that works
   * in this runtime; `handle` is one the runtime already opened on the fd
   * (Node). `tls` terminates TLS where the runtime must do it outside the
   * server (Bun). The listener reports where it listens for the guard.
   */
  listenFd(
    server: HttpServer,
    fd: number,
    handle: unknown,
    tls: TlsOptions | undefined,
  ): Promise<RawListener>;
  /** Makes `server` listen on an address of its own (the fallback). */
  listenAddr(server: HttpServer, target: Target): Promise<RawListener>;
  /**
   * The certificate and key an https.Server was created with, where the
   * runtime must terminate TLS in front of the server (Bun): "none" for a
   * plain http.Server, undefined where they cannot be read back.
   */
  tlsOf?(server: HttpServer): TlsOptions | "none" | undefined;
  /** Whether this runtime needs `tlsOf` (or the caller's `tls`) for an https.Server on an fd. */
  readonly needsTlsOutside: boolean;
}

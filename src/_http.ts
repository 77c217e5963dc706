// The contract between src/serve.ts and each runtime's HTTP adapter
// (runtimes/_http_node.ts for Node and Deno, runtimes/_http_bun.ts for Bun).
// Every runtime serves HTTP through node:http, the one server API that takes
// an inherited fd somewhere in each of them; where they differ is how the
// server gets at the fd. An adapter is loaded on the first serve() or
// listenHttp(), never at import.
import type { Server as HttpServer } from "node:http";
import type { Addr, RawListener, Target } from "./_net.ts";

/** A certificate chain and its private key, PEM-encoded. */
export interface TlsOptions {
  /** The certificate chain (PEM), leaf first. */
  cert: string | Uint8Array;
  /** The private key (PEM) of the leaf certificate. */
  key: string | Uint8Array;
}

/** What a fetch-style handler gets beside the request. */
export interface ServeInfo {
  /** The client's address (`path: ""` over a unix socket). */
  readonly remoteAddr: Addr;
  /** Settles when the response has been sent or the client went away. */
  readonly completed: Promise<void>;
}

/** A fetch-style request handler: the signature of `Deno.serve` and `Bun.serve`. */
export type ServeHandler = (request: Request, info: ServeInfo) => Response | Promise<Response>;

/** What happens to an error a {@linkcode ServeHandler} threw. */
export type ServeErrorHandler = (error: unknown, request: Request) => Response | Promise<Response> | void;

/** One accepted connection, as the drain logic sees it. */
export interface TrackedSocket {
  readonly closed: Promise<void>;
  close(): void;
}

/**
 * A server from an adapter's fast path: the runtime's own native HTTP server
 * put on the fd through runtime internals (runtimes/_http_fast_deno.ts,
 * _http_fast_bun.ts). `serve()` tries it first and falls back to node:http
 * when it answers null.
 */
export interface FastServer {
  /** Where it listens, for the wrong-bind guard. */
  listener: RawListener;
  /**
   * Stops accepting, lets responses in flight finish within `timeout` ms,
   * closes idle keep-alive connections, then cuts the rest. Called again, it
   * returns the first call's promise.
   */
  close(timeout: number): Promise<void>;
  /** Open connections (Bun: requests in flight, the only count it keeps). */
  readonly connections: number;
}

/** What a fast path is asked for. */
export interface FastServeOptions {
  /** HTTPS with this certificate and key; a fast path that cannot terminate TLS answers null. */
  tls?: TlsOptions;
  /** As serve()'s: answers a request whose handler threw. */
  onError?: ServeErrorHandler;
  /** What the fd is, as adopt() found it. */
  transport: "tcp" | "unix";
  /**
   * Every connection, as it is accepted (for idleExit): a fast path that
   * cannot report connections answers null when this is given.
   */
  onSocket?: (socket: TrackedSocket) => void;
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
    options: {
      tls?: TlsOptions;
      tlsOutside?: boolean;
      onError?: ServeErrorHandler;
      onSocket: (socket: TrackedSocket) => void;
      closing: () => boolean;
    },
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
  /**
   * A faster server on the fd through runtime internals, behind feature
   * detection: null where they are missing, and serve() uses node:http.
   */
  fastServe?(fd: number, handler: ServeHandler, options: FastServeOptions): Promise<FastServer | null>;
}

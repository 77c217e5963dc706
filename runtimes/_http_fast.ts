// The contract of the fast HTTP paths (runtimes/_http_fast_deno.ts,
// _http_fast_bun.ts): each runtime's own native HTTP server put on an
// inherited listening fd through runtime internals, behind feature detection.
// A fast path answers null wherever an internal it leans on is missing, and
// the caller serves through the supported node:http path instead. The shapes
// are those of serve() (ServeHandler, ServeInfo, TlsOptions, FastServer).
import type { Addr, RawListener } from "../src/_net.ts";

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

/** Options of a fast path. */
export interface FastServeOptions {
  /** HTTPS with this certificate and key; a fast path that cannot terminate TLS answers null. */
  tls?: TlsOptions;
  /** Answers a request whose handler threw; by default the error is logged and a 500 sent. */
  onError?: ServeErrorHandler;
  /** What the fd is, as the caller's inspection found it. */
  transport: "tcp" | "unix";
}

/** A server from a fast path. */
export interface FastServer {
  /** Where it listens, for the wrong-bind guard. */
  listener: RawListener;
  /** Stops accepting, lets responses in flight finish within `timeout` ms, then closes. */
  close(timeout: number): Promise<void>;
  /** Open connections (Bun: requests in flight, the count it keeps). */
  readonly connections: number;
}

const INTERNAL_SERVER_ERROR = "Internal Server Error";

/** The response for a handler that threw, through `onError` where one was given. */
export function failed(
  error: unknown,
  request: Request,
  onError: ServeErrorHandler | undefined,
): Response | Promise<Response> {
  if (onError !== undefined) {
    try {
      const r = onError(error, request);
      if (r instanceof Response) return r;
      if (r !== undefined && typeof (r as Promise<Response>).then === "function") {
        return (r as Promise<Response>).then(
          (x) => x instanceof Response ? x : new Response(INTERNAL_SERVER_ERROR, { status: 500 }),
          (e) => logged(e),
        );
      }
    } catch (e) {
      return logged(e);
    }
    return new Response(INTERNAL_SERVER_ERROR, { status: 500 });
  }
  return logged(error);
}

function logged(error: unknown): Response {
  console.error("socket-activate: the request handler threw:", error);
  return new Response(INTERNAL_SERVER_ERROR, { status: 500 });
}

/**
 * Calls `handler`, turning a throw or a rejection into `onError`'s answer.
 * A synchronous Response stays synchronous: Deno and Bun both answer a
 * non-promise faster.
 */
export function callHandler(
  handler: ServeHandler,
  request: Request,
  info: ServeInfo,
  onError: ServeErrorHandler | undefined,
): Response | Promise<Response> {
  try {
    const r = handler(request, info);
    if (r instanceof Response) return r;
    if (r !== null && typeof r === "object" && typeof (r as Promise<Response>).then === "function") {
      return Promise.resolve(r).then(
        (x) => x instanceof Response ? x : failed(notAResponse(x), request, onError),
        (e) => failed(e, request, onError),
      );
    }
    return failed(notAResponse(r), request, onError);
  } catch (e) {
    return failed(e, request, onError);
  }
}

function notAResponse(x: unknown): TypeError {
  return new TypeError(`The request handler returned ${x === null ? "null" : typeof x}, not a Response`);
}

/** An IP address and port as an Addr; undefined where either is missing. */
export function tcpAddr(hostname: string | undefined, port: number | undefined): Addr | undefined {
  return hostname === undefined || hostname === "" || port === undefined
    ? undefined
    : { transport: "tcp", hostname, port };
}

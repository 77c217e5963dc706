// What the fast HTTP paths (runtimes/deno/http_fast.ts, bun/http_fast.ts)
// share: each runtime's own native HTTP server put on an inherited listening
// fd through runtime internals, behind feature detection. A fast path answers
// null wherever an internal it leans on is missing, and serve() serves through
// the supported node:http path instead. The contract (FastServer,
// FastServeOptions) is src/_http.ts's.
import type { Addr } from "./_net.ts";
import type { ServeErrorHandler, ServeHandler, ServeInfo } from "./_http.ts";
import { authorityEnd, fastUrl, hostOk, refusedMethod } from "./_http_check.ts";

export type { FastServeOptions, FastServer, ServeHandler, ServeInfo } from "./_http.ts";

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
  // The words of the node:http path's (runtimes/node_api/fetch.ts) default.
  console.error(`socket-activate: serve() handler failed: ${(error as Error)?.stack ?? error}`);
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

/** What a fast path checks a request against (src/_http_check.ts has the rules). */
export interface Screen {
  /** "http://" or "https://". */
  prefix: string;
  /** The listening address, the authority of a request without Host. */
  own: string;
  /** What the runtime puts in place of a missing Host (Deno: localhost:port). */
  fallback?: string;
  /** A request header, null when absent: `request.headers.get(name)`, or the runtime's cheaper way. */
  header: (request: Request, name: string) => string | null;
  /**
   * The runtime builds `url` from a Host it parsed itself, and makes it
   * relative when it cannot (Bun): see screen().
   */
  parsed: boolean;
  /** The last authority found good: most servers see one or two. */
  last: string;
}

/** A request header through the Headers object. */
export const viaHeaders = (request: Request, name: string): string | null => request.headers.get(name);

/**
 * 0 when `request` may go to the handler, its `url` fixed where the rules
 * say, else the status to refuse it with (400, 501).
 */
export function screen(request: Request, s: Screen): number {
  if (refusedMethod(request.method)) return 501;
  const url = request.url, n = s.prefix.length;
  let fixed: string | null | undefined;
  if (s.parsed) {
    // Bun: the authority is checked where it stands in `url`, and the Host
    // header read only for a relative URL (Bun found no Host it could use)
    // or a form it does not make. A second Host line goes unseen (Bun takes
    // the first): finding it would cost every request Bun's Headers object,
    // about 8 % more CPU per request for a handler that reads no header.
    if (url.startsWith(s.prefix)) {
      if (s.last !== "" && url.startsWith(s.last, n) && url.charCodeAt(n + s.last.length) === 47) return 0;
      const end = authorityEnd(url, n);
      if (url.charCodeAt(end) === 47) {
        if (!hostOk(url, n, end)) return 400;
        s.last = url.slice(n, end);
        return 0;
      }
    }
    fixed = fastUrl(url, s.header(request, "host"), s.prefix, s.own, s.fallback);
  } else {
    const host = s.header(request, "host");
    if (host !== null && host === s.last && url.startsWith(s.prefix) && url.startsWith(host, n)) {
      if (url.charCodeAt(n + host.length) === 47) return 0;
    }
    fixed = fastUrl(url, host, s.prefix, s.own, s.fallback);
    if (fixed === undefined && host !== null && host !== "") s.last = host;
  }
  if (fixed === undefined) return 0;
  if (fixed === null) return 400;
  // An own property over the prototype's getter: the same Request, whose
  // body, signal and ties to the runtime (Deno.upgradeWebSocket(),
  // Bun's server.requestIP()) stay as they were. Only its clone() has the
  // runtime's URL.
  Object.defineProperty(request, "url", { value: fixed, enumerable: true });
  return 0;
}

/**
 * `response`, saying `Connection: close`: answered during a drain, so that
 * the client sends its next request on a new connection, which the next
 * process serves.
 */
export function closingConnection(response: Response): Response {
  try {
    response.headers.set("connection", "close");
    return response;
  } catch {
    // Immutable headers (Response.redirect(), Response.error()).
    const r = new Response(response.body, response);
    r.headers.set("connection", "close");
    return r;
  }
}

/**
 * The answer to a refused request: no body, and the connection closed, as
 * the runtimes' own parsers close it after what they refuse. `said`: the
 * server adds `Connection: close` itself (hyper, to a response whose request
 * body is left unread), so it is not said twice.
 */
export function refusal(status: number, said = false): Response {
  return new Response(null, { status, headers: said ? undefined : { connection: "close" } });
}

// node:http <-> fetch (Request/Response), shared by the three runtimes (each
// serves HTTP through node:http: see src/_http.ts). Loaded on the first
// serve() or listenHttp(), never at import.
//
// A bridge of its own rather than srvx's or @hono/node-server's: srvx's lazy
// NodeRequest answered about 1.2 times as many requests a second, but loading
// srvx/node (it brings node:http2 and node:https) cost 6 to 16 ms more on the
// first request after activation, and the package keeps no runtime
// dependency (bench/http-bridge.mjs; docs/benchmarks.md "The fetch bridge",
// docs/internals.md "The bridge").
// Requests: in Node a view of the IncomingMessage that builds the real
// Request only where one is needed (runtimes/node_api/request.ts); in Deno's
// and Bun's node:http a real Request, its body a web stream that reads only
// as fast as the handler consumes it. Responses: a body that is all there goes out with
// Content-Length, a streamed one chunk by chunk with backpressure, and a
// graceful close turns keep-alive off.
import type * as Http from "node:http";
import type * as Https from "node:https";
import type { Addr } from "../../src/_net.ts";
import type {
  FetchServerOptions,
  ServeErrorHandler,
  ServeHandler,
  ServeInfo,
  TlsOptions,
  TrackedSocket,
} from "../../src/_http.ts";
import { DEFAULT_MAX_REQUEST_BODY_SIZE, hostOk, refusedMethod, targetPath } from "../../src/_http_check.ts";
import { abortWhenGone, bodyStream, type RequestView, viewClass } from "./request.ts";
import { upgrades } from "./upgrade.ts";

let httpModule: typeof Http | undefined;
let httpsModule: typeof Https | undefined;
/** node:http, loaded on first use. */
export const httpm = (): typeof Http => (httpModule ??= process.getBuiltinModule("node:http") as typeof Http);
/** node:https, loaded on first use. */
export const httpsm =
  (): typeof Https => (httpsModule ??= process.getBuiltinModule("node:https") as typeof Https);

/** PEM text as node:tls takes it in every runtime (bytes are decoded: PEM is ASCII). */
export function pem(tls: TlsOptions): { cert: string; key: string } {
  const text = (v: string | Uint8Array) => typeof v === "string" ? v : new TextDecoder().decode(v);
  return { cert: text(tls.cert), key: text(tls.key) };
}

/** The socket of a node:http server as a tracked connection. */
export function tracked(s: { once(e: "close", f: () => void): unknown; destroy(): unknown }): TrackedSocket {
  return { closed: new Promise<void>((r) => s.once("close", () => r())), close: () => s.destroy() };
}

function remoteOf(s: { remoteAddress?: string; remotePort?: number }): Addr {
  return s.remoteAddress !== undefined && s.remotePort !== undefined
    ? { transport: "tcp", hostname: s.remoteAddress, port: s.remotePort }
    : { transport: "unix", path: "" };
}

class Info implements ServeInfo {
  #completed: Promise<void> | undefined;
  #remote: Addr | undefined;
  private readonly req: Http.IncomingMessage;
  private readonly res: Http.ServerResponse;
  constructor(req: Http.IncomingMessage, res: Http.ServerResponse) {
    this.req = req;
    this.res = res;
  }
  get remoteAddr(): Addr {
    return (this.#remote ??= remoteOf(this.req.socket));
  }
  /** Bun.serve's own upgrade, which node:http has not (runtimes/bun/ws.ts has it on Bun's fast path). */
  get upgrade(): ServeInfo["upgrade"] {
    return noUpgrade;
  }
  // Built on first use: most handlers never look, and a promise per request
  // is measurable at tens of thousands of requests a second.
  get completed(): Promise<void> {
    return (this.#completed ??= new Promise<void>((resolve) => {
      if (this.res.closed) resolve();
      else this.res.once("close", () => resolve());
    }));
  }
}

function noUpgrade(): boolean {
  throw new TypeError(
    "Cannot upgrade with info.upgrade(): it is Bun.serve's, on serve()'s fast path in Bun only, and this request " +
      "came through node:http (SOCKET_ACTIVATE_HTTP_FAST=0, idleExit, or no fast path in this runtime): use " +
      "upgradeWebSocket(request, handlers), which works on every path",
  );
}

const NO_BODY = new Set(["GET", "HEAD"]);

/** A body above the limit, found while it is read: 413, or a cut connection once the head is out. */
function tooLarge(res: Http.ServerResponse): void {
  if (res.headersSent) res.destroy();
  else refuse(res, 413);
}

const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request",
  413: "Payload Too Large",
  501: "Not Implemented",
};

/**
 * Answers a request that src/_http_check.ts's rules turn away, with no body,
 * and closes the connection, as the runtimes' own parsers do after what they
 * refuse. With a lingering close: the socket is half-closed once the answer
 * is out and what the client still sends (a refused body) is read and
 * dropped, for 2 s at most, as nginx and Apache do. node:http itself would
 * destroy it at once (`destroySoon()` after a `Connection: close` response),
 * and closing a socket with unread bytes makes the kernel reset the
 * connection, which can discard the answer before the client has read it.
 */
function refuse(res: Http.ServerResponse, status: number): void {
  res.writeHead(status, STATUS_TEXT[status], { "content-length": "0", connection: "close" });
  res.end();
  const socket = res.socket as (Http.ServerResponse["socket"] & { destroySoon?: () => void }) | null;
  if (socket === null) return;
  let lingering = false;
  const linger = () => {
    if (lingering || socket.destroyed) return;
    lingering = true;
    socket.end();
    setTimeout(() => socket.destroy(), 2000).unref?.();
  };
  socket.destroySoon = linger;
  res.once("finish", linger);
}

/** What the bridge needs to know of its server. */
export interface BridgeOptions {
  /** The authority of a request without Host: the listening address. */
  authority: () => string;
  /** The request body limit, in bytes. */
  maxRequestBodySize: number;
  /**
   * Whether handlers get the view of runtimes/node_api/request.ts (Node)
   * rather than a Request built for each request (Deno's and Bun's node:http,
   * serve()'s way out of their fast paths, keep the plain one).
   */
  view: boolean;
}

const DEFAULTS: BridgeOptions = {
  authority: () => "localhost",
  maxRequestBodySize: DEFAULT_MAX_REQUEST_BODY_SIZE,
  view: false,
};

/**
 * Builds the Request a handler gets from node:http's request and response,
 * or tells the status to refuse it with (400, 413, 501).
 */
export type RequestFactory = (
  req: Http.IncomingMessage,
  res: Http.ServerResponse,
  scheme: "http" | "https",
  options: BridgeOptions,
) => Request | number;

let ServerRequest: (new (url: string, init: RequestInit, res: Http.ServerResponse) => Request) | undefined;

/**
 * A Request whose `signal` (aborted when the client goes away before the
 * response is sent) is made on first use: an AbortController passed to the
 * Request constructor cost Node's undici 10 to 15 µs a request, more than
 * half of what the rest of the bridge takes, for a signal few handlers read.
 */
function serverRequestClass(): new (url: string, init: RequestInit, res: Http.ServerResponse) => Request {
  return class extends Request {
    #res: Http.ServerResponse;
    #signal: AbortSignal | undefined;
    constructor(url: string, init: RequestInit, res: Http.ServerResponse) {
      super(url, init);
      this.#res = res;
    }
    override get signal(): AbortSignal {
      return this.#signal ??= abortWhenGone(this.#res);
    }
  };
}

// The last Host that passed hostOk(): every request of a connection, most of
// a server's, bring the same one, and a compare is cheaper than the scan.
let lastHost = "";

/**
 * The fetch Request for an IncomingMessage (the view, or a Request built
 * now), or the status to refuse it with. Host and Content-Length are picked
 * up in one pass over the raw headers.
 */
export const toRequest: RequestFactory = (req, res, scheme, options) => {
  const method = req.method ?? "GET";
  if (refusedMethod(method)) return 501;
  const raw = req.rawHeaders;
  let host: string | undefined;
  let hosts = 0;
  let length: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i];
    const n = k.length;
    if (n === 4 && (k === "Host" || k === "host" || k.toLowerCase() === "host")) {
      host = raw[i + 1];
      hosts++;
    } else if (
      n === 14 && (k === "Content-Length" || k === "content-length" || k.toLowerCase() === "content-length")
    ) length = raw[i + 1];
  }
  let authority: string;
  if (hosts > 1) return 400;
  // HTTP/1.1 requires Host (RFC 9112 §3.2): node:http refuses a request
  // without one in Node and Deno, Bun's passes it on.
  if (host === undefined && req.httpVersion === "1.1") return 400;
  if (host === undefined || host === "") authority = options.authority();
  else if (host === lastHost || hostOk(host)) authority = lastHost = host;
  else return 400;
  const path = targetPath(method, req.url ?? "/");
  if (path === undefined) return 400;
  const limit = options.maxRequestBodySize;
  if (length !== undefined && Number(length) > limit) return 413;
  const url = `${scheme}://${authority}${path}`;
  if (options.view) return new (viewClass())(req, res, url, method, limit, tooLarge);
  const headers = new Headers();
  for (let i = 0; i < raw.length; i += 2) headers.append(raw[i], raw[i + 1]);
  const init: RequestInit & { duplex?: "half" } = { method, headers };
  if (!NO_BODY.has(method)) {
    init.body = bodyStream(req, res, limit, tooLarge);
    init.duplex = "half"; // a streamed request body (fetch spec; required by Node's undici)
  }
  return new (ServerRequest ??= serverRequestClass())(url, init, res);
};

// Settles a few microtasks on: long enough for the next read() of a body
// that is all there (Node's undici takes two, Deno one, Bun two), far too
// short for a stream that is still producing.
const LATER = () => Promise.resolve().then().then().then().then(() => undefined);

type Head = { status: number; text: string | undefined; headers: Record<string, string | string[]> };

const NODE = typeof (globalThis as { Deno?: unknown }).Deno === "undefined" &&
  typeof (globalThis as { Bun?: unknown }).Bun === "undefined";

/**
 * Ends a response with a body of bytes. Node's node:http writes a string
 * body in one write with the head, but a Uint8Array as a buffer of its own
 * beside it (a writev), which cost about 7% more CPU per small response
 * (bench/http-node.mjs, Node 26): a small body goes as latin1 text, which
 * maps each byte to itself. Deno's and Bun's node:http get the bytes.
 */
function endBytes(res: Http.ServerResponse, body: Uint8Array): void {
  if (NODE && body.byteLength <= 4096) {
    res.end(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("latin1"), "latin1");
  } else res.end(body);
}

/** A status whose response has no body, so no Content-Length either. */
const bodiless = (status: number) => status < 200 || status === 204 || status === 304;

/**
 * Sends the head with a Content-Length when the body's length is known:
 * node:http picks chunked encoding when writeHead() runs without one, even
 * if end() brings the whole body right after.
 */
function head(res: Http.ServerResponse, h: Head, length: number | undefined, close: Closing): void {
  if (length !== undefined && !bodiless(h.status) && h.headers["content-length"] === undefined) {
    h.headers["content-length"] = String(length);
  }
  if (close.now()) h.headers["connection"] = "close";
  res.writeHead(h.status, h.text, h.headers);
}

async function sendBody(
  res: Http.ServerResponse,
  h: Head,
  body: ReadableStream<Uint8Array>,
  isHead: boolean,
  close: Closing,
): Promise<void> {
  const reader = body.getReader();
  let gone = false;
  const onClose = () => {
    if (res.writableFinished) return;
    gone = true;
    reader.cancel().catch(() => {});
  };
  res.once("close", onClose);
  try {
    const first = await reader.read();
    if (first.done) {
      head(res, h, 0, close);
      return void res.end();
    }
    // A body that is all there (the usual `new Response(text)`) goes out in
    // one end() with a Content-Length; a stream still producing gets its
    // first chunk sent at once, chunked.
    let pending: Promise<ReadableStreamReadResult<Uint8Array>> = reader.read();
    const now = await Promise.race([pending, LATER()]);
    if (now?.done) {
      head(res, h, first.value.byteLength, close);
      return void (isHead ? res.end() : endBytes(res, first.value));
    }
    head(res, h, undefined, close);
    // The head goes out before a graceful close may start, the end after:
    // the connection, idle then, is closed. A response whose head and end go
    // out together needs no such listener: the close's own
    // closeIdleConnections() finds it ended (res.finished).
    res.once("finish", () => close.now() && close.idle());
    if (isHead) {
      reader.cancel().catch(() => {});
      return void res.end();
    }
    let chunk = first.value;
    for (;;) {
      if (gone) return;
      if (!res.write(chunk)) {
        await new Promise<void>((resolve) => {
          const done = () => {
            res.off("drain", done);
            res.off("close", done);
            resolve();
          };
          res.once("drain", done);
          res.once("close", done);
        });
      }
      const r = await pending;
      if (r.done) break;
      chunk = r.value;
      pending = reader.read();
    }
    if (!gone) res.end();
  } catch (e) {
    // The stream failed midway: the client must not take a cut body for a
    // whole one, so the connection is closed without the final chunk.
    if (!gone) res.destroy(e as Error);
  } finally {
    res.off("close", onClose);
  }
}

function headOf(response: Response): Head {
  const headers: Record<string, string | string[]> = {};
  const h = response.headers;
  let cookies = false;
  h.forEach((v, k) => {
    if (k === "set-cookie") cookies = true;
    else headers[k] = v;
  });
  if (cookies) headers["set-cookie"] = h.getSetCookie();
  return { status: response.status, text: response.statusText || undefined, headers };
}

/** Where a FastResponse (src/fast_response.ts) shows what it was made with. */
const PARTS = Symbol.for("socket-activate.FastResponse.parts");

interface FastParts {
  status: number;
  statusText: string;
  headers: HeadersInit | undefined;
  body: string | Uint8Array | ArrayBuffer | null;
}

/**
 * Sends a FastResponse as it was made: its headers as given (a record, pairs
 * or a Headers), the Content-Type a string body gets from Response, a
 * Content-Length, and the body in one end(). node:http checks the names and
 * values, as Response would have.
 */
function sendParts(res: Http.ServerResponse, p: FastParts, isHead: boolean, closing: boolean): void {
  const headers: Record<string, string | string[]> = {};
  const given = p.headers;
  if (given !== undefined) {
    if (given instanceof Headers) {
      let cookies = false;
      given.forEach((v, k) => {
        if (k === "set-cookie") cookies = true;
        else headers[k] = v;
      });
      if (cookies) headers["set-cookie"] = given.getSetCookie();
    } else if (Array.isArray(given)) {
      for (const [k, v] of given) {
        const n = k.toLowerCase();
        const had = headers[n];
        if (n === "set-cookie") headers[n] = had === undefined ? [v] : [...had, v];
        else headers[n] = had === undefined ? v : `${had}, ${v}`;
      }
    } else {
      for (const k in given) headers[k.toLowerCase()] = (given as Record<string, string>)[k];
    }
  }
  const body = p.body;
  let length = 0;
  if (typeof body === "string") {
    if (headers["content-type"] === undefined) headers["content-type"] = "text/plain;charset=UTF-8";
    length = Buffer.byteLength(body);
  } else if (body !== null) length = body.byteLength;
  if (!bodiless(p.status) && headers["content-length"] === undefined) {
    headers["content-length"] = String(length);
  }
  if (closing) headers["connection"] = "close";
  res.writeHead(p.status, p.statusText || undefined, headers);
  if (isHead || body === null) res.end();
  else if (typeof body === "string") res.end(body);
  else endBytes(res, body instanceof ArrayBuffer ? new Uint8Array(body) : body);
}

// Node 22's undici keeps a Response's state under a symbol, the body's source
// (the string or bytes it was made with) included: the bridge sends that and
// skips reading the body's web stream. Node 24 and 26 keep it in a private
// field, and the stream is read.
let stateKey: symbol | null | undefined;

function findStateKey(): symbol | null {
  const probe = new Response("probe") as unknown as Record<
    symbol,
    { body?: { source?: unknown } } | undefined
  >;
  for (const k of Object.getOwnPropertySymbols(probe)) {
    if (probe[k]?.body?.source === "probe") return k;
  }
  return null;
}

/** The string or bytes a Response was made with, where the runtime shows them; undefined elsewhere. */
function sourceOf(response: Response): string | Uint8Array | undefined {
  if (stateKey === undefined) stateKey = findStateKey();
  if (stateKey === null) return undefined;
  const source =
    (response as unknown as Record<symbol, { body?: { source?: unknown } } | undefined>)[stateKey]
      ?.body?.source;
  if ((typeof source === "string" || source instanceof Uint8Array) && !response.bodyUsed) return source;
  return undefined;
}

/**
 * A request body the handler answered without touching is read and dropped,
 * so that the connection can carry the next request: Deno's node:http stalls
 * a keep-alive connection whose request body was left unread
 * (denoland/deno#36821); Node and Bun would drop it themselves.
 */
function dropUnread(request: Request, res: Http.ServerResponse): void {
  if (typeof (request as RequestView).dropUnread === "function") return (request as RequestView).dropUnread();
  const body = request.body;
  if (body === null) return;
  // Once the response is out: a response may stream the request body back.
  res.once("finish", () => {
    if (!request.bodyUsed && !body.locked) body.cancel().catch(() => {});
  });
}

/** A server's graceful close, as the bridge sees it. */
interface Closing {
  /** Whether the server is closing: responses then say `Connection: close`. */
  now(): boolean;
  /** Closes the connections left idle, soon: a response finished during the close. */
  idle(): void;
}

function send(
  res: Http.ServerResponse,
  response: unknown,
  request: Request,
  close: Closing,
): void {
  const method = request.method;
  if (res.headersSent) {
    // The body limit answered 413 while the handler ran: its response is dropped.
    if (response instanceof Response) response.body?.cancel().catch(() => {});
    return;
  }
  if (!(response instanceof Response)) {
    throw new TypeError(
      `The serve() handler returned ${
        response === null ? "null" : typeof response
      } instead of a Response: return new Response(...)`,
    );
  }
  dropUnread(request, res);
  const parts = (response as unknown as { [PARTS]?: () => FastParts | undefined })[PARTS]?.();
  if (parts !== undefined) return sendParts(res, parts, method === "HEAD", close.now());
  const h = headOf(response);
  const source = sourceOf(response);
  if (source !== undefined) {
    head(res, h, typeof source === "string" ? Buffer.byteLength(source) : source.byteLength, close);
    if (method === "HEAD") return void res.end();
    return void (typeof source === "string" ? res.end(source) : endBytes(res, source));
  }
  const body = response.body;
  if (body === null) {
    head(res, h, 0, close);
    res.end();
    return;
  }
  sendBody(res, h, body, method === "HEAD", close).catch((e) => {
    defaultError(e);
    res.destroy();
  });
}

// process.stderr rather than the runtime shim's write(): this file then
// shares no module with the package's entry, which tsup would otherwise split
// into a chunk of its own, one more file to load at every import.
function defaultError(error: unknown): void {
  process.stderr.write(`socket-activate: serve() handler failed: ${(error as Error)?.stack ?? error}\n`);
}

/** A node:http request listener that runs a fetch-style handler. */
export function requestListener(
  handler: ServeHandler,
  scheme: "http" | "https",
  onError: ServeErrorHandler | undefined,
  closing: () => boolean,
  makeRequest: RequestFactory = toRequest,
  options: BridgeOptions = DEFAULTS,
  idle: () => void = () => {},
): (req: Http.IncomingMessage, res: Http.ServerResponse) => void {
  const close: Closing = { now: closing, idle };
  const fail = (res: Http.ServerResponse, request: Request, error: unknown): void => {
    // The body limit answered 413 while the handler ran, and its read
    // rejected: the error is the client's, and the answer is out.
    if (res.writableEnded) return;
    let answer: ReturnType<ServeErrorHandler> = undefined;
    try {
      answer = onError ? onError(error, request) : defaultError(error);
    } catch (e) {
      defaultError(e);
    }
    Promise.resolve(answer).then((r) => {
      if (res.writableEnded) return;
      if (res.headersSent) res.destroy();
      else if (r instanceof Response) send(res, r, request, close);
      else {
        res.writeHead(500, { "content-type": "text/plain;charset=UTF-8", connection: "close" });
        res.end("Internal Server Error");
      }
    }).catch((e) => {
      defaultError(e);
      res.destroy();
    });
  };
  // What follows runs for every request: no closure, promise or listener
  // more than the handler's answer needs (each costs node:http's pace).
  return (req, res) => {
    // A request that comes during a graceful close gets `Connection: close`.
    if (closing()) res.shouldKeepAlive = false;
    let request: Request | number;
    try {
      request = makeRequest(req, res, scheme, options);
    } catch {
      // What the checks let through and the Request constructor still
      // refuses is the client's fault, never an uncaught exception.
      request = 400;
    }
    if (typeof request === "number") return refuse(res, request);
    const r = request;
    let result;
    try {
      result = handler(r, new Info(req, res));
    } catch (e) {
      return fail(res, r, e);
    }
    if (result instanceof Response) {
      try {
        send(res, result, r, close);
      } catch (e) {
        fail(res, r, e);
      }
      return;
    }
    // One then() with both callbacks: a promise less than then().catch().
    (result instanceof Promise ? result : Promise.resolve(result)).then((x) => {
      try {
        send(res, x, r, close);
      } catch (e) {
        fail(res, r, e);
      }
    }, (e) => fail(res, r, e));
  };
}

/** An http.Server, or an https.Server with `tls`, running a fetch-style handler. */
export function fetchServer(
  handler: ServeHandler,
  options: FetchServerOptions,
): Promise<Http.Server> {
  const g = globalThis as { Deno?: unknown; Bun?: unknown };
  const bridge: BridgeOptions = {
    authority: options.authority ?? DEFAULTS.authority,
    maxRequestBodySize: options.maxRequestBodySize ?? DEFAULT_MAX_REQUEST_BODY_SIZE,
    view: g.Deno === undefined && g.Bun === undefined,
  };
  const scheme = options.tls ? "https" : "http";
  const server = options.tls && !options.tlsOutside
    ? httpsm().createServer(pem(options.tls))
    : httpm().createServer();
  // During a graceful close, a keep-alive connection whose response finishes is closed rather than left idle.
  const idle = () => void setImmediate(() => server.closeIdleConnections?.());
  server.on(
    "request",
    requestListener(handler, scheme, options.onError, options.closing, toRequest, bridge, idle),
  );
  server.on("connection", (s) => options.onSocket(tracked(s)));
  // CONNECT comes as an event of its own, and node:http destroys the socket
  // without a word when nothing listens: 501, as for TRACE.
  server.on("connect", (_req: Http.IncomingMessage, socket: import("node:stream").Duplex) => {
    socket.on("error", () => {});
    socket.end("HTTP/1.1 501 Not Implemented\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
  });
  // Expect: 100-continue: a body above the limit is refused before the
  // client is told to send it.
  server.on("checkContinue", (req: Http.IncomingMessage, res: Http.ServerResponse) => {
    const length = req.headers["content-length"];
    if (length !== undefined && Number(length) > bridge.maxRequestBodySize) return refuse(res, 413);
    res.writeContinue();
    server.emit("request", req, res);
  });
  upgrades(server, { handler, scheme, onError: options.onError, bridge });
  return Promise.resolve(server);
}

/** Where a node:net server listens. */
export function addrOf(server: { address(): unknown }): Addr | undefined {
  const a = server.address() as { address: string; port: number } | string | null;
  if (a !== null && typeof a === "object" && "port" in a) {
    return { transport: "tcp", hostname: a.address, port: a.port };
  }
  return typeof a === "string" ? { transport: "unix", path: a } : undefined;
}

/** server.listen(target), resolved when it listens, rejected on its error. */
export function listening(server: Http.Server | import("node:net").Server, target: unknown): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    (server.listen as (t: unknown, cb: () => void) => void)(target, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

/** The node:net target of a fallback (abstract `@name` as a leading NUL). */
export function netTarget(target: { hostname: string; port: number } | { path: string }): unknown {
  return "path" in target
    ? { path: target.path.startsWith("@") ? "\0" + target.path.slice(1) : target.path }
    : { port: target.port, host: target.hostname, exclusive: true };
}

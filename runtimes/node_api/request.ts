// The Request a serve() handler gets over node:http: a thin view of the
// IncomingMessage rather than a web Request built for every request. Loaded
// with the bridge (runtimes/node_api/fetch.ts), never at import.
//
// Building a real Request (its URL, a Headers filled header by header, a web
// stream for the body) cost Node's undici more CPU per request than
// node:http's own handling of a small request (bench/http-bridge.mjs). The
// view answers what most handlers read (method, url, headers, signal, and
// the body through text(), json(), arrayBuffer(), bytes() and blob(), read
// straight from the message) and builds the real Request only when something
// else is asked of it: body (the stream), clone(), formData() and the rest of
// Request's properties. Its prototype is Request's, so `request instanceof
// Request` holds; `request.headers` is a real Headers, built on first use.
//
// One limit, of Node's undici: fetch(request) takes only a Request undici
// built itself. Node 22's undici finds the Request's state through symbols,
// which the view hands over from the real Request it then builds; Node 24 and
// 26 check a private field no other object can have (nodejs/undici#4186), so
// there fetch() needs `request.clone()`, a real Request (docs/http.md).
import type * as Http from "node:http";
import { forwardTo } from "../../src/_forward.ts";
import { BODY_TOO_LARGE } from "../../src/_http_check.ts";

/** A signal aborted when the client goes away before the response is sent. */
export function abortWhenGone(res: Http.ServerResponse): AbortSignal {
  const ac = new AbortController();
  const gone = () => !res.writableFinished && ac.abort();
  if (res.closed) gone();
  else res.once("close", gone);
  return ac.signal;
}

/** What the view needs of the bridge: the answer to a body above the limit. */
export type TooLarge = (res: Http.ServerResponse) => void;

/** UTF-8 decoded as Request.text() does it: a leading BOM dropped. */
const utf8 = (b: Buffer): string =>
  b.length >= 3 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf
    ? b.toString("utf8", 3)
    : b.toString("utf8");

const parseJson = (b: Buffer): unknown => JSON.parse(utf8(b));

const unusable = () => new TypeError("Body is unusable: Body has already been read");

/**
 * The body of an IncomingMessage as a web stream that reads only as fast as
 * it is consumed. Past `limit` bytes (a chunked body: a Content-Length above
 * the limit was refused before) the stream errors and the client gets 413.
 */
export function bodyStream(
  req: Http.IncomingMessage,
  res: Http.ServerResponse,
  limit: number,
  tooLarge: TooLarge,
): ReadableStream<Uint8Array> {
  let cancelled = false;
  let seen = 0;
  return new ReadableStream<Uint8Array>({
    start(c) {
      req.on("data", (d: Buffer) => {
        if (cancelled) return;
        seen += d.byteLength;
        if (seen > limit) {
          cancelled = true;
          c.error(new RangeError(BODY_TOO_LARGE));
          tooLarge(res);
          return;
        }
        c.enqueue(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
        if ((c.desiredSize ?? 1) <= 0) req.pause();
      });
      req.once("end", () => cancelled || c.close());
      req.once("error", (e) => cancelled || c.error(e));
      req.pause();
    },
    pull() {
      req.resume();
    },
    cancel() {
      // The handler does not want the rest: read and drop it, so that the
      // connection stays usable for the next request.
      cancelled = true;
      req.resume();
    },
  });
}

/**
 * The whole body of an IncomingMessage, read directly (no web stream), within
 * `limit` bytes. Three listeners and no `once()` wrappers: this runs for
 * every request whose handler reads the body. No 'error' listener: node:http
 * destroys a request whose client goes away with an error only where one
 * listens (IncomingMessage's _destroy), and 'close' before the end says so.
 */
function readAll<T>(
  req: Http.IncomingMessage,
  res: Http.ServerResponse,
  limit: number,
  tooLarge: TooLarge,
  as: (b: Buffer) => T,
): Promise<T> {
  return new Promise((resolve, reject) => {
    let first: Buffer | undefined;
    let chunks: Buffer[] | undefined;
    let seen = 0;
    let over = false;
    req.on("data", (d: Buffer) => {
      if (over) return;
      seen += d.byteLength;
      if (seen > limit) {
        over = true;
        first = chunks = undefined;
        reject(new RangeError(BODY_TOO_LARGE));
        tooLarge(res); // the rest is read and dropped while the 413 goes out
        return;
      }
      if (first === undefined) first = d;
      else (chunks ??= [first]).push(d);
    });
    req.on("end", () => {
      if (over) return;
      // Turned into what the handler asked for here, not in a then(): a promise and a tick less.
      try {
        resolve(as(chunks !== undefined ? Buffer.concat(chunks, seen) : first ?? Buffer.alloc(0)));
      } catch (e) {
        reject(e);
      }
    });
    // The client went away before the body was all there.
    req.on("close", () => {
      if (!req.complete && !over) {
        reject(Object.assign(new Error("The client closed the connection"), { code: "ECONNRESET" }));
      }
    });
  });
}

/** Properties of Request.prototype the view answers itself; the rest go to the real Request. */
const OWN = new Set([
  "constructor",
  "method",
  "url",
  "headers",
  "signal",
  "body",
  "bodyUsed",
  "text",
  "json",
  "arrayBuffer",
  "bytes",
  "blob",
  "clone",
]);

/** The parts of the view the bridge uses. */
export interface RequestView extends Request {
  /** Reads and drops a body the handler left unread, once the response is out. */
  dropUnread(): void;
}

type ViewClass = new (
  req: Http.IncomingMessage,
  res: Http.ServerResponse,
  url: string,
  method: string,
  limit: number,
  tooLarge: TooLarge,
) => RequestView;

let View: ViewClass | undefined;

/** The view class, made on first use (it needs the runtime's Request). */
export function viewClass(): ViewClass {
  return View ??= makeViewClass();
}

function makeViewClass(): ViewClass {
  const NO_BODY = new Set(["GET", "HEAD"]);
  class RequestViewImpl {
    #req: Http.IncomingMessage;
    #res: Http.ServerResponse;
    #url: string;
    #method: string;
    #limit: number;
    #tooLarge: TooLarge;
    #headers: Headers | undefined;
    #real: Request | undefined;
    #signal: AbortSignal | undefined;
    #used = false;
    constructor(
      req: Http.IncomingMessage,
      res: Http.ServerResponse,
      url: string,
      method: string,
      limit: number,
      tooLarge: TooLarge,
    ) {
      this.#req = req;
      this.#res = res;
      this.#url = url;
      this.#method = method;
      this.#limit = limit;
      this.#tooLarge = tooLarge;
    }
    get method(): string {
      return this.#method;
    }
    get url(): string {
      return this.#url;
    }
    get headers(): Headers {
      if (this.#real !== undefined) return this.#real.headers;
      if (this.#headers === undefined) {
        const h = this.#headers = new Headers();
        const raw = this.#req.rawHeaders;
        for (let i = 0; i < raw.length; i += 2) h.append(raw[i], raw[i + 1]);
      }
      return this.#headers;
    }
    /** Aborted when the client goes away before the response is sent; made on first use. */
    get signal(): AbortSignal {
      return this.#signal ??= abortWhenGone(this.#res);
    }
    get body(): ReadableStream<Uint8Array> | null {
      return this.#realRequest().body;
    }
    get bodyUsed(): boolean {
      return this.#real !== undefined ? this.#real.bodyUsed : this.#used;
    }
    /** The body read whole and turned by `as`, once. */
    #read<T>(as: (b: Buffer) => T): Promise<T> {
      if (this.#used) return Promise.reject(unusable());
      this.#used = true;
      if (NO_BODY.has(this.#method)) {
        try {
          return Promise.resolve(as(Buffer.alloc(0)));
        } catch (e) {
          return Promise.reject(e);
        }
      }
      return readAll(this.#req, this.#res, this.#limit, this.#tooLarge, as);
    }
    text(): Promise<string> {
      if (this.#real !== undefined) return this.#real.text();
      return this.#read(utf8);
    }
    json(): Promise<unknown> {
      if (this.#real !== undefined) return this.#real.json();
      return this.#read(parseJson);
    }
    arrayBuffer(): Promise<ArrayBuffer> {
      if (this.#real !== undefined) return this.#real.arrayBuffer();
      // A copy: a small Buffer is a view of node:http's shared pool.
      return this.#read((b) => new Uint8Array(b).buffer);
    }
    bytes(): Promise<Uint8Array> {
      if (this.#real !== undefined) return (this.#real as Request & { bytes(): Promise<Uint8Array> }).bytes();
      return this.#read((b) => new Uint8Array(b));
    }
    blob(): Promise<Blob> {
      if (this.#real !== undefined) return this.#real.blob();
      const type = (this.#req.headers["content-type"] ?? "").toLowerCase();
      return this.#read((b) => new Blob([b as Uint8Array<ArrayBuffer>], { type }));
    }
    clone(): Request {
      if (this.#real === undefined && this.#used) throw unusable();
      return this.#realRequest().clone();
    }
    dropUnread(): void {
      if (NO_BODY.has(this.#method) || this.#used) return;
      const real = this.#real;
      if (real === undefined) {
        this.#res.once("finish", () => this.#req.resume());
        return;
      }
      // Once the response is out: a response may stream the request body back.
      const body = real.body;
      if (body === null) return;
      this.#res.once("finish", () => {
        if (!real.bodyUsed && !body.locked) body.cancel().catch(() => {});
      });
    }
    /** The real Request, built once: what the view cannot answer goes to it. */
    #realRequest(): Request {
      if (this.#real !== undefined) return this.#real;
      const init: RequestInit & { duplex?: "half" } = { method: this.#method, headers: this.headers };
      // A body already read through text() and the like is gone: the real
      // Request has none (its bodyUsed stays true through the view).
      if (!NO_BODY.has(this.#method) && !this.#used) {
        init.body = bodyStream(this.#req, this.#res, this.#limit, this.#tooLarge);
        init.duplex = "half"; // a streamed request body (fetch spec; required by Node's undici)
      }
      this.#real = new Request(this.#url, init);
      this.#headers = undefined;
      return this.#real;
    }
    /** For the forwarding getters below. */
    static real(view: RequestViewImpl): Request {
      return view.#realRequest();
    }
  }
  const proto = RequestViewImpl.prototype as unknown as Record<PropertyKey, unknown>;
  const real = (self: unknown) =>
    RequestViewImpl.real(self as RequestViewImpl) as unknown as Record<PropertyKey, unknown>;
  // Every other property of Request (cache, mode, formData(), ...) is the real Request's.
  forwardTo(proto, Request.prototype, new Set<PropertyKey>([...OWN, Symbol.toStringTag]), real);
  // Node 22's undici keeps a Request's state under symbols of its own, and
  // fetch(request) reads them: the view hands over the real Request's.
  for (const key of Object.getOwnPropertySymbols(new Request("http://localhost/"))) {
    Object.defineProperty(proto, key, {
      configurable: true,
      get: function (this: unknown) {
        return real(this)[key];
      },
    });
  }
  Object.setPrototypeOf(RequestViewImpl.prototype, Request.prototype);
  return RequestViewImpl as unknown as ViewClass;
}

// FastResponse: a Response that serve()'s node:http bridge sends without
// building a web Response. In Node a `new Response(text)` costs undici about
// as much CPU as node:http's whole handling of a small request (a web
// stream for the body, a Headers, the checks; bench/http-node.mjs), so
// FastResponse keeps its body and init as given and builds the real Response
// only when something asks for more than status and headers. In Deno and Bun
// it is the runtime's own Response: their servers need one, and build it
// natively. Loaded with the entry: it touches no runtime module, and Node's
// Response (undici, loaded on first use) is looked up on the first `new`.

import { forwardTo } from "./_forward.ts";

/** The global symbol under which the bridge (runtimes/node_api/fetch.ts) finds a FastResponse's parts. */
const PARTS = Symbol.for("socket-activate.FastResponse.parts");

type Body = ConstructorParameters<typeof Response>[0];

/** What the bridge sends for a FastResponse: what it was made with, or undefined once it is a real Response. */
interface FastParts {
  status: number;
  statusText: string;
  headers: HeadersInit | undefined;
  body: string | Uint8Array | ArrayBuffer | null;
}

const NULL_BODY = new Set([101, 103, 204, 205, 304]);
let wired = false;
let native: boolean | undefined;

/**
 * A `Response` that `serve()` sends faster in Node: status, headers and a
 * string or bytes body go straight to `node:http`, with no web `Response`
 * built. It is a `Response` in every other way (`instanceof Response`,
 * `headers`, `text()`, `clone()`, ...: the real one is built when asked
 * for). In Deno and Bun, whose own servers take it, it is the runtime's
 * `Response`.
 *
 * @example Hello at node:http's speed
 * ```ts
 * import { FastResponse, serve } from "@socket-activate/socket-activate";
 *
 * await serve({ fallback: { port: 8080 } }, () => new FastResponse("Hello, World!\n"));
 * ```
 */
export const FastResponse: typeof Response = class FastResponse {
  #body: Body;
  #init: ResponseInit | undefined;
  #real: Response | undefined;

  constructor(body?: Body, init?: ResponseInit) {
    native ??= typeof (globalThis as { Deno?: unknown }).Deno !== "undefined" ||
      typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";
    if (native) return new Response(body, init) as unknown as FastResponse;
    if (!wired) wire(FastResponse as unknown as new () => object);
    const status = init?.status;
    if (status !== undefined && (!(status >= 200 && status <= 599) || !Number.isInteger(status))) {
      // The real Response's own check and words.
      return new Response(body, init) as unknown as FastResponse;
    }
    if (body != null && status !== undefined && NULL_BODY.has(status)) {
      return new Response(body, init) as unknown as FastResponse;
    }
    this.#body = body;
    this.#init = init;
  }

  /** A JSON body, as `Response.json()` gives it. */
  static json(data: unknown, init?: ResponseInit): Response {
    const text = JSON.stringify(data);
    if (text === undefined) return Response.json(data, init); // its TypeError
    let headers: HeadersInit = { "content-type": "application/json" };
    if (init?.headers !== undefined) {
      const h = headers = new Headers(init.headers);
      if (!h.has("content-type")) h.set("content-type", "application/json");
    }
    return new FastResponse(text, {
      status: init?.status,
      statusText: init?.statusText,
      headers,
    }) as unknown as Response;
  }

  /** A network error, as `Response.error()`. */
  static error(): Response {
    return Response.error();
  }

  /** A redirect, as `Response.redirect()`. */
  static redirect(url: string | URL, status?: number): Response {
    return Response.redirect(url, status);
  }

  get status(): number {
    return this.#real?.status ?? this.#init?.status ?? 200;
  }

  get ok(): boolean {
    const s = this.status;
    return s >= 200 && s <= 299;
  }

  get statusText(): string {
    return this.#real?.statusText ?? this.#init?.statusText ?? "";
  }

  /** The real Response, built on first need. */
  #response(): Response {
    return (this.#real ??= new Response(this.#body, this.#init));
  }

  /** @internal What the bridge sends; undefined when the real Response is to be sent instead. */
  [PARTS](): FastParts | undefined {
    if (this.#real !== undefined) return undefined;
    const b = this.#body;
    if (b == null || typeof b === "string" || b instanceof Uint8Array || b instanceof ArrayBuffer) {
      const init = this.#init;
      return {
        status: init?.status ?? 200,
        statusText: init?.statusText ?? "",
        headers: init?.headers,
        body: b ?? null,
      };
    }
    return undefined;
  }

  /** @internal The real Response, for the forwarding properties. */
  static real(r: FastResponse): Response {
    return r.#response();
  }
} as unknown as typeof Response;

/**
 * Makes FastResponse a Response: Response.prototype behind its own, and
 * every property it does not answer itself (headers, body, text(), clone(),
 * ...) forwarded to the real Response. Done on the first `new`, so that
 * importing the package does not load Node's undici.
 */
function wire(cls: new () => object): void {
  wired = true;
  const real = (cls as unknown as { real(r: unknown): Record<PropertyKey, unknown> }).real;
  const own = new Set<PropertyKey>(["constructor", "status", "ok", "statusText", Symbol.toStringTag]);
  const proto = cls.prototype as Record<PropertyKey, unknown>;
  forwardTo(proto, Response.prototype, own, real);
  Object.setPrototypeOf(cls.prototype, Response.prototype);
  Object.setPrototypeOf(cls, Response);
}

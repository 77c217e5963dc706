// Bun.serve itself (uWebSockets, in native code) on an inherited listening
// fd: about 2.5x the requests/s of node:http fed through
// emit('connection') in Bun (bench/http.mjs).
//
// Why this way: Bun.serve takes no fd and silently serves on port 3000 when
// given one, and Bun's http.Server.listen({ fd }) binds a random port instead
// (oven-sh/bun#22559, fixes #33578 and #36491 open). Bun.serve has no way to
// adopt a socket, so the socket is put under it (runtimes/ffi/takeover.ts):
// Bun.serve opens a private listener (127.0.0.1 port 0 for a TCP fd, so that
// requestIP() works, which it does not for unix servers; a path in a fresh
// 0700 directory for a unix fd), and the inherited socket takes that
// listener's fd number and epoll entry, so that uWebSockets accepts on it as
// if it had opened it. Where a check fails, serveFast() stops Bun's server
// and answers null, the inherited fd intact and listening.
//
// The private TCP listener exists for the microseconds between Bun.serve()
// and dup3(): a connection to it then is reset, never served.
import type { Addr, RawListener } from "../../src/_net.ts";
import type { FastServeOptions, FastServer, ServeHandler, ServeInfo } from "../../src/_http.ts";
import {
  callHandler,
  closingConnection,
  failed,
  refusal,
  type Screen,
  screen,
  viaHeaders,
} from "../../src/_http_fast.ts";
import { authorityOf, BODY_TOO_LARGE, DEFAULT_MAX_REQUEST_BODY_SIZE } from "../../src/_http_check.ts";
import { bunWebSockets } from "./ws.ts";
import {
  AF_UNIX,
  epollFds,
  inode,
  listeningFamily,
  nodeFsSys,
  privateSockaddr,
  setNonblocking,
  sockname,
  type Sys,
  takeOver,
  toAddr,
  unsupported,
} from "../ffi/takeover.ts";

// deno-lint-ignore no-explicit-any
type Any = any;

interface Tools {
  sys: Sys;
  fs: typeof import("node:fs");
}

function tools(): Tools | string {
  const B = (globalThis as Any).Bun;
  if (typeof B?.serve !== "function") return "Bun.serve";
  let ffi: Any;
  try {
    ffi = (process as Any).getBuiltinModule("bun:ffi");
    const lib = ffi.dlopen("libc.so.6", {
      dup3: { args: ["i32", "i32", "i32"], returns: "i32" },
      fcntl: { args: ["i32", "i32", "i32"], returns: "i32" },
      epoll_ctl: { args: ["i32", "i32", "i32", "ptr"], returns: "i32" },
      getsockname: { args: ["i32", "ptr", "ptr"], returns: "i32" },
      getsockopt: { args: ["i32", "i32", "i32", "ptr", "ptr"], returns: "i32" },
    }).symbols;
    const fs = (process as Any).getBuiltinModule("node:fs");
    const sys = nodeFsSys(fs, process.arch, {
      dup3: lib.dup3,
      fcntl: lib.fcntl,
      epollCtl: (ep, op, fd, ev) => lib.epoll_ctl(ep, op, fd, ffi.ptr(ev)),
      getsockname: (fd, a, len) => lib.getsockname(fd, ffi.ptr(a), ffi.ptr(len)),
      getsockopt: (fd, level, name, v, len) => lib.getsockopt(fd, level, name, ffi.ptr(v), ffi.ptr(len)),
    });
    const why = unsupported(sys);
    return why ?? { sys, fs };
  } catch {
    return "bun:ffi with libc.so.6";
  }
}

/** Why serveFast() would answer null here before trying, or undefined. */
export function unavailable(): string | undefined {
  const t = tools();
  return typeof t === "string" ? `${t} is missing` : undefined;
}

class Info implements ServeInfo {
  #remote: Addr | undefined;
  /** Bun's own upgrade (`server.upgrade()`), for the `websocket` handlers of serve()'s options. */
  readonly upgrade: (request: Request, options?: { data?: unknown; headers?: HeadersInit }) => boolean;
  #completed: Promise<void> | undefined;
  private readonly server: Any;
  private readonly request: Request;
  private readonly unix: boolean;
  constructor(server: Any, request: Request, unix: boolean, upgrade: Info["upgrade"]) {
    this.server = server;
    this.upgrade = upgrade;
    this.request = request;
    this.unix = unix;
  }
  get remoteAddr(): Addr {
    if (this.#remote !== undefined) return this.#remote;
    const ip = this.unix ? null : this.server.requestIP(this.request);
    return (this.#remote = ip ? { transport: "tcp", hostname: ip.address, port: ip.port } : {
      transport: "unix",
      path: "",
    });
  }
  /**
   * Bun tells neither when a response was sent nor when a client left after
   * it: this settles when the body has been read out to Bun to the end, or
   * the request was aborted (the client went away).
   */
  get completed(): Promise<void> {
    return (this.#completed ??= new Promise<void>((resolve) => {
      completions.set(this.request, resolve);
      this.request.signal.addEventListener("abort", () => resolve(), { once: true });
    }));
  }
}

// Requests whose handler asked for info.completed, to the resolver: looked up
// only for those, so the common request pays one WeakMap miss.
const completions = new WeakMap<Request, () => void>();

function withCompletion(request: Request, response: Response): Response {
  const done = completions.get(request);
  if (done === undefined) return response;
  completions.delete(request);
  if (response.body === null) {
    done();
    return response;
  }
  const body = response.body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({ flush: () => done() }),
  );
  return new Response(body, {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
}

/**
 * Serves `handler` with Bun.serve on the listening socket `fd` (TCP or unix,
 * HTTP or HTTPS); null where an internal it leans on is missing, with the fd
 * untouched and still listening.
 */
export function serveFast(
  fd: number,
  handler: ServeHandler,
  options: FastServeOptions,
): Promise<FastServer | null> {
  return Promise.resolve(serveFastSync(fd, handler, options));
}

function serveFastSync(fd: number, handler: ServeHandler, options: FastServeOptions): FastServer | null {
  const t = tools();
  if (typeof t === "string") return null;
  const { sys } = t;
  const family = listeningFamily(sys, fd);
  const where = sockname(sys, fd);
  if (family === undefined || where === undefined || inode(sys, fd) === undefined) return null;
  if (epollFds(sys).length === 0) return null;
  const unix = family === AF_UNIX;
  if (!setNonblocking(sys, fd)) return null;

  const fs = t.fs;
  const dir = unix
    ? fs.mkdtempSync(`${(process.env.TMPDIR ?? "/tmp").replace(/\/$/, "")}/socket-activate-`)
    : "";
  const cleanup = () => {
    if (!unix) return;
    try {
      fs.rmSync(dir, { recursive: true, force: true });
    } catch { /* gone */ }
  };
  const B = (globalThis as Any).Bun;
  // A read that Bun's limit rejected: Bun has answered 413 already, and the
  // error is the client's, not one to log or give onError. Bun's error
  // carries no code; its message is the mark.
  const onError = (e: unknown, r: Request) =>
    (e as Error)?.message === BODY_TOO_LARGE ? refusal(413) : failed(e, r, options.onError);
  const addr = toAddr(where);
  const sc: Screen = {
    prefix: options.tls ? "https://" : "http://",
    own: authorityOf(addr),
    header: viaHeaders,
    parsed: true,
    last: "",
  };
  const limit = options.maxRequestBodySize ?? DEFAULT_MAX_REQUEST_BODY_SIZE;
  let server: Any;
  const ws = bunWebSockets(options.websocket, () => server);
  const h = ws.handler(handler);
  try {
    server = B.serve({
      ...(unix ? { unix: `${dir}/s` } : { hostname: "127.0.0.1", port: 0 }),
      ...(options.tls ? { tls: { cert: options.tls.cert, key: options.tls.key } } : {}),
      // Bun's own limit, with serve()'s meaning in every runtime: 413 for a
      // Content-Length above it before the body is read, 413 for a chunked
      // body once it passes it (the handler's read rejecting), the
      // connection closed.
      maxRequestBodySize: limit === Infinity ? Number.MAX_SAFE_INTEGER : limit,
      development: false,
      websocket: ws.config,
      fetch(request: Request, srv: Any): Response | Promise<Response> {
        const status = screen(request, sc);
        if (status !== 0) return refusal(status);
        ws.mark(request);
        const r = callHandler(h, request, new Info(srv, request, unix, ws.upgrade), onError);
        const out = (x: Response) =>
          x === ws.UPGRADED
            ? undefined as unknown as Response
            : withCompletion(request, closing === undefined ? x : closingConnection(x));
        return r instanceof Response ? out(r) : r.then(out);
      },
      error(e: unknown): Response {
        console.error("socket-activate: serving a request failed:", e);
        return new Response("Internal Server Error", { status: 500 });
      },
    });
  } catch {
    cleanup();
    return null;
  }

  const giveUp = () => {
    try {
      server.stop(true);
    } catch { /* stopped */ }
    cleanup();
    return null;
  };
  // Bun's listener: the one socket listening at the address it was given.
  const taken = takeOver(sys, fd, privateSockaddr(unix ? `${dir}/s` : undefined, server.port));
  if (typeof taken !== "number") return giveUp();
  cleanup(); // the private path is not listened on any more

  let closing: Promise<void> | undefined;
  const listener: RawListener = {
    addr,
    sameFd: true,
    close: () => {
      if (closing === undefined) void server.stop(false);
    },
  };
  return {
    listener,
    get connections() {
      return server.pendingRequests as number;
    },
    close(timeout: number): Promise<void> {
      if (closing !== undefined) return closing;
      // stop(false) closes Bun's fd n (the dup: the inherited fd stays open)
      // and lets requests in flight finish; idle keep-alive connections are
      // closed now, the rest after their response or at `timeout`. Open
      // WebSockets get a close with 1001 (going away).
      const stopped = Promise.resolve(server.stop(false));
      ws.closeAll();
      server.closeIdleConnections?.();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const cut = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          void server.stop(true);
          resolve();
        }, timeout);
      });
      closing = Promise.race([stopped, cut]).then(() => clearTimeout(timer));
      return closing;
    },
  };
}

// Bun.serve itself (uWebSockets, in native code) on an inherited listening
// fd: about 2.5x the requests/s of node:http fed through
// emit('connection') in Bun (bench/http.mjs).
//
// Why this way: Bun.serve takes no fd and silently serves on port 3000 when
// given one, and Bun's http.Server.listen({ fd }) binds a random port instead
// (oven-sh/bun#22559, fixes #33578 and #36491 open). Bun.serve has no way to
// adopt a socket, so the socket is put under it: Bun.serve opens a private
// listener (127.0.0.1 port 0 for a TCP fd, so that requestIP() works, which
// it does not for unix servers; a path in a fresh 0700 directory for a unix
// fd), then, in the same synchronous run (Bun's loop cannot accept in
// between), dup3() puts the inherited socket on that listener's fd number and
// epoll_ctl() registers it in Bun's epoll set with the exact events and
// user data the old one had, read from /proc/self/fdinfo. uWebSockets then
// accepts on the inherited socket as if it had opened it. Every step is
// checked (one listener found by its address, one epoll entry found by its
// inode, the fd then shown to be the inherited socket in the epoll set);
// wherever one fails before dup3 nothing changed and serveFast() answers
// null, after it Bun's server is stopped and null returned, the inherited
// fd intact either way.
//
// The private TCP listener exists for the microseconds between Bun.serve()
// and dup3(): a connection to it then is reset, never served.
import type { Addr, RawListener } from "../src/_net.ts";
import type { FastServeOptions, FastServer, ServeHandler, ServeInfo } from "../src/_http.ts";
import { callHandler } from "./_http_fast.ts";

// deno-lint-ignore no-explicit-any
type Any = any;

const F_GETFL = 3, F_SETFL = 4, O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1, SO_TYPE = 3, SO_ACCEPTCONN = 30, SO_DOMAIN = 39, SOCK_STREAM = 1;
const AF_UNIX = 1, AF_INET = 2, AF_INET6 = 10;
const EPOLL_CTL_ADD = 1;
// struct epoll_event is packed on x86-64 (12 bytes), naturally aligned elsewhere.
const EPOLL_EVENT: Record<string, { size: number; data: number }> = {
  x64: { size: 12, data: 4 },
  arm64: { size: 16, data: 8 },
};

interface Libc {
  dup3(oldfd: number, newfd: number, flags: number): number;
  fcntl(fd: number, cmd: number, arg: number): number;
  epoll_ctl(epfd: number, op: number, fd: number, event: Any): number;
  getsockname(fd: number, addr: Any, len: Any): number;
  getsockopt(fd: number, level: number, name: number, value: Any, len: Any): number;
}

interface Tools {
  libc: Libc;
  ptr: (buf: Uint8Array) => Any;
  fs: typeof import("node:fs");
  layout: { size: number; data: number };
}

function tools(): Tools | string {
  const B = (globalThis as Any).Bun;
  if (typeof B?.serve !== "function") return "Bun.serve";
  const layout = EPOLL_EVENT[process.arch];
  if (layout === undefined) return `struct epoll_event on ${process.arch}`;
  let ffi: Any;
  try {
    ffi = (process as Any).getBuiltinModule("bun:ffi");
    const lib = ffi.dlopen("libc.so.6", {
      dup3: { args: ["i32", "i32", "i32"], returns: "i32" },
      fcntl: { args: ["i32", "i32", "i32"], returns: "i32" },
      epoll_ctl: { args: ["i32", "i32", "i32", "ptr"], returns: "i32" },
      getsockname: { args: ["i32", "ptr", "ptr"], returns: "i32" },
      getsockopt: { args: ["i32", "i32", "i32", "ptr", "ptr"], returns: "i32" },
    });
    return { libc: lib.symbols, ptr: ffi.ptr, fs: (process as Any).getBuiltinModule("node:fs"), layout };
  } catch {
    return "bun:ffi with libc.so.6";
  }
}

function intOpt(t: Tools, fd: number, name: number): number | undefined {
  const v = new Int32Array(1), len = new Uint32Array([4]);
  return t.libc.getsockopt(
      fd,
      SOL_SOCKET,
      name,
      t.ptr(new Uint8Array(v.buffer)),
      t.ptr(new Uint8Array(len.buffer)),
    ) ===
      0
    ? v[0]
    : undefined;
}

/** getsockname as bytes; undefined when it fails. */
function sockname(t: Tools, fd: number): Uint8Array | undefined {
  const a = new Uint8Array(128), len = new Uint32Array([128]);
  if (t.libc.getsockname(fd, t.ptr(a), t.ptr(new Uint8Array(len.buffer))) !== 0) return undefined;
  return a.subarray(0, len[0]);
}

/** A sockaddr as an Addr (unix: the path, "@name" for an abstract one). */
function toAddr(sa: Uint8Array): Addr | undefined {
  const v = new DataView(sa.buffer, sa.byteOffset, sa.byteLength);
  const family = v.getUint16(0, true);
  if (family === AF_INET && sa.length >= 8) {
    return { transport: "tcp", hostname: sa.subarray(4, 8).join("."), port: v.getUint16(2, false) };
  }
  if (family === AF_INET6 && sa.length >= 24) {
    const groups: string[] = [];
    for (let i = 0; i < 8; i++) groups.push(v.getUint16(8 + 2 * i, false).toString(16));
    return { transport: "tcp", hostname: compressV6(groups), port: v.getUint16(2, false) };
  }
  if (family === AF_UNIX) {
    const raw = sa.subarray(2);
    if (raw.length > 0 && raw[0] === 0) return { transport: "unix", path: "@" + latin1(raw.subarray(1)) };
    const end = raw.indexOf(0);
    return { transport: "unix", path: latin1(end < 0 ? raw : raw.subarray(0, end)) };
  }
  return undefined;
}

function latin1(b: Uint8Array): string {
  return String.fromCharCode(...b);
}

/** RFC 5952 text of eight hex groups (the longest run of two or more zeros becomes ::). */
function compressV6(g: string[]): string {
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === "0") j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  if (best < 0) return g.join(":");
  return `${g.slice(0, best).join(":")}::${g.slice(best + bestLen).join(":")}`;
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  return a !== undefined && b !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The socket inode behind an fd (`socket:[N]`), or undefined. */
function inode(t: Tools, fd: number): string | undefined {
  try {
    return /^socket:\[(\d+)\]$/.exec(t.fs.readlinkSync(`/proc/self/fd/${fd}`))?.[1];
  } catch {
    return undefined;
  }
}

/** The open fds of this process that are epoll instances. */
function epollFds(t: Tools): number[] {
  const out: number[] = [];
  for (const name of t.fs.readdirSync("/proc/self/fd")) {
    try {
      if (t.fs.readlinkSync(`/proc/self/fd/${name}`) === "anon_inode:[eventpoll]") out.push(Number(name));
    } catch { /* closed meanwhile (readdir's own fd) */ }
  }
  return out;
}

/** Every epoll entry for `fd` whose file is socket inode `ino`: [epoll fd, events, data]. */
function epollEntries(t: Tools, fd: number, ino: string): [number, number, bigint][] {
  const found: [number, number, bigint][] = [];
  const hex = BigInt(ino).toString(16);
  for (const ep of epollFds(t)) {
    let text: string;
    try {
      text = t.fs.readFileSync(`/proc/self/fdinfo/${ep}`, "latin1");
    } catch {
      continue;
    }
    const re =
      /^tfd:\s*(\d+)\s+events:\s*([0-9a-f]+)\s+data:\s*([0-9a-f]+)\s+pos:\s*\d+\s+ino:\s*([0-9a-f]+)/gm;
    for (let m; (m = re.exec(text)) !== null;) {
      if (Number(m[1]) === fd && m[4] === hex) found.push([ep, parseInt(m[2], 16), BigInt("0x" + m[3])]);
    }
  }
  return found;
}

/** The listening sockets among this process's fds whose address is `sa`. */
function listenersAt(t: Tools, sa: Uint8Array, except: number): number[] {
  const out: number[] = [];
  for (const name of t.fs.readdirSync("/proc/self/fd")) {
    const fd = Number(name);
    if (fd === except || inode(t, fd) === undefined) continue;
    if (intOpt(t, fd, SO_ACCEPTCONN) === 1 && sameBytes(sockname(t, fd), sa)) out.push(fd);
  }
  return out;
}

/** Why serveFast() would answer null here before trying, or undefined. */
export function unavailable(): string | undefined {
  const t = tools();
  return typeof t === "string" ? `${t} is missing` : undefined;
}

class Info implements ServeInfo {
  #remote: Addr | undefined;
  #completed: Promise<void> | undefined;
  constructor(
    private readonly server: Any,
    private readonly request: Request,
    private readonly unix: boolean,
  ) {}
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
  const { libc } = t;
  const family = intOpt(t, fd, SO_DOMAIN);
  if (
    intOpt(t, fd, SO_ACCEPTCONN) !== 1 || intOpt(t, fd, SO_TYPE) !== SOCK_STREAM ||
    (family !== AF_INET && family !== AF_INET6 && family !== AF_UNIX)
  ) return null;
  const where = sockname(t, fd);
  const fdIno = inode(t, fd);
  if (where === undefined || fdIno === undefined || epollFds(t).length === 0) return null;
  const unix = family === AF_UNIX;

  // uWebSockets accepts in a loop until EAGAIN: a blocking socket (systemd's
  // default, NonBlocking=no) would hang the loop once the backlog is empty.
  const fl = libc.fcntl(fd, F_GETFL, 0);
  if (fl < 0 || ((fl & O_NONBLOCK) === 0 && libc.fcntl(fd, F_SETFL, fl | O_NONBLOCK) !== 0)) return null;

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
  const onError = options.onError;
  let server: Any;
  try {
    server = B.serve({
      ...(unix ? { unix: `${dir}/s` } : { hostname: "127.0.0.1", port: 0 }),
      ...(options.tls ? { tls: { cert: options.tls.cert, key: options.tls.key } } : {}),
      // As Bun's own node:http server sets it: no request body limit, the
      // same as the node:http fallback.
      maxRequestBodySize: Number.MAX_SAFE_INTEGER,
      development: false,
      fetch(request: Request, srv: Any): Response | Promise<Response> {
        const r = callHandler(handler, request, new Info(srv, request, unix), onError);
        return r instanceof Response ? withCompletion(request, r) : r.then((x) => withCompletion(request, x));
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
  const privateAddr = privateSockaddr(unix ? `${dir}/s` : undefined, server.port);
  const candidates = listenersAt(t, privateAddr, fd);
  if (candidates.length !== 1) return giveUp();
  const n = candidates[0];
  const nIno = inode(t, n);
  const entries = nIno === undefined ? [] : epollEntries(t, n, nIno);
  if (entries.length !== 1) return giveUp();
  const [ep, events, data] = entries[0];

  if (libc.dup3(fd, n, O_CLOEXEC) !== n) return giveUp();
  const ev = new Uint8Array(t.layout.size);
  const v = new DataView(ev.buffer);
  v.setUint32(0, events, true);
  v.setBigUint64(t.layout.data, data, true);
  if (libc.epoll_ctl(ep, EPOLL_CTL_ADD, n, t.ptr(ev)) !== 0) return giveUp();
  // Proof: fd n is now the inherited socket, in Bun's epoll set as before.
  if (inode(t, n) !== fdIno || epollEntries(t, n, fdIno).length !== 1) return giveUp();
  cleanup(); // the private path is not listened on any more

  let closing: Promise<void> | undefined;
  const listener: RawListener = {
    addr: toAddr(where),
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
      // closed now, the rest after their response or at `timeout`.
      const stopped = Promise.resolve(server.stop(false));
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

/** The sockaddr Bun's private listener has: 127.0.0.1:port, or the unix path. */
function privateSockaddr(path: string | undefined, port: number): Uint8Array {
  if (path !== undefined) {
    const p = new TextEncoder().encode(path);
    const sa = new Uint8Array(2 + p.length + 1);
    new DataView(sa.buffer).setUint16(0, AF_UNIX, true);
    sa.set(p, 2);
    return sa;
  }
  const sa = new Uint8Array(16);
  const v = new DataView(sa.buffer);
  v.setUint16(0, AF_INET, true);
  v.setUint16(2, port, false);
  sa.set([127, 0, 0, 1], 4);
  return sa;
}

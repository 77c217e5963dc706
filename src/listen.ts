import { ActivationError } from "./errors.ts";
import { type FdInfo, inspectWith } from "./inspect_fd.ts";
import { claim, type ListenFd, listenFds, release, remembered } from "./listen_fds.ts";
import { type Addr, type Conn, formatAddr, type RawListener, type Target } from "./_net.ts";
import { getRuntime, type Runtime } from "./_runtime.ts";
import { keepAlive } from "./watchdog.ts";
import { checkSignals, guard } from "./_signals.ts";
import { StreamConn } from "./_streams.ts";

export type { Addr, Conn } from "./_net.ts";

/**
 * Where to listen when the process was not socket-activated.
 *
 * @example A unix socket when not activated
 * ```ts
 * import { type Fallback, listen } from "@socket-activate/socket-activate";
 *
 * const fallback: Fallback = { path: "/tmp/app.sock" }; // or { port: 8080, hostname: "127.0.0.1" }
 * await listen({ name: "web", fallback }, (conn) => conn.close());
 * ```
 */
export type Fallback = { port: number; hostname?: string } | { path: string };

/**
 * Options for {@linkcode listen}.
 *
 * @example Every option
 * ```ts
 * import { listen, type ListenOptions } from "@socket-activate/socket-activate";
 *
 * const options: ListenOptions = {
 *   name: "web", // FileDescriptorName=web in the .socket unit
 *   fallback: { port: 8080 },
 *   drainTimeout: 5000,
 *   watchdog: true,
 *   idleExit: 600,
 *   onError: (error) => console.error("handler failed:", error),
 * };
 * await listen(options, (conn) => conn.close());
 * ```
 */
export interface ListenOptions {
  /**
   * The fd to serve, by its name in LISTEN_FDNAMES (`FileDescriptorName=`).
   * Names survive the arbitrary order in which systemd passes the fds of
   * several socket units; prefer them to `index`.
   *
   * @default {the only fd passed}
   */
  name?: string;
  /**
   * The fd to serve, by position among the passed fds (0 is fd 3).
   *
   * @default {the only fd passed}
   */
  index?: number;
  /**
   * Where to listen when the process was not activated. Without it a
   * process that was not activated gets an error.
   *
   * @default {none}
   */
  fallback?: Fallback;
  /**
   * How long `close()` waits for open connections before it closes them, in
   * milliseconds.
   *
   * @default {10000}
   */
  drainTimeout?: number;
  /**
   * Ping the service manager's watchdog (WATCHDOG=1) at half of WatchdogSec=
   * while the event loop runs, until the server closes. Nothing happens when
   * no watchdog is asked of this process ({@linkcode watchdogInterval}).
   *
   * @default {false}
   */
  watchdog?: boolean;
  /**
   * Seconds without any open connection after which an activated server
   * closes and the process exits (status 0), to be started again by the
   * service manager on the next connection. Ignored when not activated.
   *
   * @default {never}
   */
  idleExit?: number;
  /**
   * Called with an error a connection handler threw or rejected with; the
   * connection is then closed.
   *
   * @default {a line on stderr: a peer's reset or broken pipe in one line
   * (the connection, the peer, what happened), any other error with its stack}
   */
  onError?: (error: unknown, conn: Conn) => void;
  /**
   * Stop on SIGTERM and SIGINT: every server of the process drains as
   * `close()` does (telling systemd STOPPING=1), then the process exits 0;
   * a second signal exits at once. A program's own handler for a signal
   * (`process.on`, `process.once`) takes it instead; in Deno one added with
   * `Deno.addSignalListener` is not seen, so pass `false` there. `false`
   * leaves every signal alone.
   *
   * @default {true}
   */
  signals?: boolean;
}

/**
 * A stream server from {@linkcode listen}.
 *
 * @example Report, then shut down gracefully
 * ```ts
 * import { listen, type Server } from "@socket-activate/socket-activate";
 *
 * const server: Server = await listen({ fallback: { port: 8080 } }, (conn) => conn.close());
 * console.log(server.activated ? `fd ${server.fd} "${server.name}"` : "port 8080");
 * await server.close(); // stop accepting, let open connections finish, close
 * ```
 */
export interface Server {
  /** True when the socket came from the service manager, false for the fallback. */
  readonly activated: boolean;
  /** Where the server listens (or, for Accept=yes, the local end of the connection). */
  readonly addr: Addr;
  /**
   * For an Accept=yes connection (one connection per process), the peer's
   * address; undefined for a listener.
   */
  readonly remoteAddr?: Addr;
  /** The inherited fd served, when activated. */
  readonly fd: number | undefined;
  /** The fd's name from LISTEN_FDNAMES, when activated. */
  readonly name: string | undefined;
  /** Connections open now. */
  readonly connections: number;
  /**
   * Stops accepting, waits up to `drainTimeout` for open connections to end,
   * then closes the rest. Resolves when everything is closed.
   */
  close(): Promise<void>;
  /**
   * Settles when the server has closed: after `close()`, or, for an Accept=yes
   * connection, when that one connection is done.
   */
  readonly finished: Promise<void>;
}

/**
 * Handles one connection. The connection stays open until it is closed or both streams are done.
 *
 * @example A handler of its own
 * ```ts
 * import { type ConnHandler, listen } from "@socket-activate/socket-activate";
 *
 * const hello: ConnHandler = async (conn) => {
 *   await conn.write(new TextEncoder().encode("hello\n"));
 *   conn.close();
 * };
 * await listen({ fallback: { port: 8080 } }, hello);
 * ```
 */
export type ConnHandler = (conn: Conn) => void | Promise<void>;

/**
 * Serves stream connections on the socket the service manager passed, or on
 * a socket of its own (`fallback`) when the process was not activated. The
 * same handler runs under Node, Deno and Bun; each runtime gets its fastest
 * working way in (node:net; Bun.listen; node:net for an inherited fd in Deno).
 *
 * An inherited fd is checked before it is served: it must be a stream socket,
 * listening, or connected with the name `connection` (or `unknown`, as
 * `systemd-socket-activate --accept` passes it) for Accept=yes, which is then
 * served as a single connection. After adopting the fd, the server's own
 * address is compared with the fd's; a runtime that listened somewhere else
 * is an error, never a silent wrong bind.
 *
 * @param options Which fd to serve, the fallback, the drain timeout.
 * @param handler Called for each connection.
 * @returns The server, once it accepts connections.
 * @throws {ActivationError} When the environment is malformed (`EINVAL`,
 * `ERANGE`, `EBADF`, `ESRCH`), no fd fits the options (`ENOENT`), the fd is
 * not a stream socket (`ENOTSOCK`, `EPROTOTYPE`), is connected where a
 * listener was asked for (`EISCONN`), is already served (`EBUSY`), or the
 * runtime listened somewhere other than the fd (`EADDRNOTAVAIL`).
 *
 * @example An echo server, activated or on port 8888
 * ```ts
 * import { listen } from "@socket-activate/socket-activate";
 *
 * const server = await listen({ fallback: { port: 8888 } }, async (conn) => {
 *   await conn.readable.pipeTo(conn.writable);
 * });
 * console.error(`listening (activated: ${server.activated})`);
 * await server.close();
 * ```
 */
// deno-lint-ignore require-await -- async so that a synchronous throw reaches the caller as a rejection
export async function listen(options: ListenOptions, handler: ConnHandler): Promise<Server> {
  const rt = getRuntime();
  if (options.idleExit !== undefined && !(options.idleExit > 0)) {
    throw new RangeError(`Cannot exit after ${options.idleExit} idle seconds: give a number above 0`);
  }
  checkSignals(options.signals, "listen() options");
  const adopted = adopt(rt, options);
  if (adopted === undefined) {
    requireFallback(options.fallback);
    return fallbackServer(rt, options, handler);
  }
  return activatedServer(rt, adopted, options, handler);
}

/** @internal Throws the "not activated, no fallback" error. */
export function requireFallback(fallback: Fallback | undefined): asserts fallback is Fallback {
  if (fallback === undefined) {
    throw new ActivationError(
      "ENOENT",
      "Not socket-activated (no LISTEN_PID/LISTEN_FDS for this process) and no fallback given: " +
        "pass { fallback: { port } } or { fallback: { path } } to listen on a socket of its own",
    );
  }
}

function activationFds(): ListenFd[] {
  const r = remembered();
  if (r === undefined) return listenFds();
  if ("error" in r) throw r.error;
  return r.fds;
}

function names(fds: ListenFd[]): string {
  return fds.map((f) => `${f.fd} "${f.name}"`).join(", ");
}

function choose(rt: Runtime, fds: ListenFd[], o: ListenOptions): ListenFd | undefined {
  if (fds.length === 0) return undefined;
  if (o.name !== undefined) {
    const f = fds.find((x) => x.name === o.name);
    if (f === undefined) {
      throw new ActivationError(
        "ENOENT",
        `No fd named "${o.name}" was passed (fds: ${names(fds)}): set FileDescriptorName=${o.name} in the ` +
          "socket unit (systemd-socket-activate --fdname), or ask for one of those names",
      );
    }
    return f;
  }
  if (o.index !== undefined) {
    const f = fds[o.index];
    if (f === undefined) {
      throw new ActivationError(
        "ENOENT",
        `No fd at index ${o.index}: ${fds.length} fd(s) were passed (${names(fds)})`,
      );
    }
    return f;
  }
  if (fds.length > 1) {
    // "Choose one" would be wrong advice where the service manager's count
    // is the mistake: the runtime's own fds then fill the numbers after the
    // last one passed.
    for (const f of fds) {
      let target: string | undefined;
      try {
        target = rt.readLink(`/proc/self/fd/${f.fd}`);
      } catch { /* Deno with neither -A nor --allow-ffi: cannot tell */ }
      if (target !== undefined && runtimeOwn({ fd: f.fd, kind: "other", target })) {
        throw notPassed(fds.length, f.fd, target);
      }
    }
    throw new ActivationError(
      "ENOENT",
      `${fds.length} fds were passed (${names(fds)}): choose one with { name } (systemd orders the fds of ` +
        "several socket units arbitrarily, so names are safer than { index })",
    );
  }
  return fds[0];
}

/** What an fd is (`tcp stream listening`) and where (`127.0.0.1:80`, a path, a /proc target). */
function fdFacts(info: FdInfo): { what: string; where: string } {
  const where = info.address === undefined
    ? info.target ?? ""
    : info.port === undefined
    ? info.address || "(unnamed)"
    : `${info.family === "ipv6" ? `[${info.address}]` : info.address}:${info.port}`;
  // A datagram socket neither listens nor, as ListenDatagram= passes it, is
  // connected: it is bound (inspectFd cannot tell a connected one).
  const state = info.listening === undefined
    ? ""
    : info.type === "dgram"
    ? "bound"
    : info.listening
    ? "listening"
    : "connected";
  return { what: [info.kind, info.type, state].filter(Boolean).join(" "), where };
}

function describeFd(f: ListenFd, info: FdInfo): string {
  const { what, where } = fdFacts(info);
  return `fd ${f.fd} "${f.name}" is a ${what}${where ? ` (${where})` : ""}`;
}

/**
 * Whether an fd is one the runtime opened for itself (an epoll, an eventfd,
 * as `inspect` tells them) rather than one that was passed: every runtime's
 * first fd of its own is its epoll, at the first number after the passed fds.
 */
function runtimeOwn(info: FdInfo): boolean {
  return info.kind === "other" && info.target?.startsWith("anon_inode:") === true;
}

function notPassed(count: number, fd: number, target: string | undefined): ActivationError {
  return new ActivationError(
    "EBADF",
    `LISTEN_FDS=${count} promises more fds than were passed (fd ${fd} is the runtime's own ${target}): ` +
      "the program that started this one passed fewer fds than it announced, or closed some. Pass one fd " +
      "per socket LISTEN_FDS counts (run `socket-activate inspect` under the same ExecStart= to see what arrives)",
  );
}

/**
 * @internal The EBADF for an fd that the runtime opened itself where
 * LISTEN_FDS promised a passed one; undefined for any other fd.
 */
export function notPassedError(f: ListenFd, info: FdInfo): ActivationError | undefined {
  if (!runtimeOwn(info)) return undefined;
  const r = remembered();
  return notPassed(r && "fds" in r ? r.fds.length : f.fd - 2, f.fd, info.target);
}

function checkStream(f: ListenFd, info: FdInfo, runtime?: string): "listener" | "connection" {
  const own = notPassedError(f, info);
  if (own) throw own;
  const hint = "listen() serves stream sockets (ListenStream= in the .socket unit)";
  // Bun.listen({ fd }) serves a SOCK_SEQPACKET listener with each read and
  // each write one packet, and so does Node's pipe handle
  // (runtimes/node_api/net.ts); Deno's node:net fails on it (EINVAL).
  if (
    info.type === "seqpacket" && info.kind === "unix" && (runtime === "bun" || runtime === "node") &&
    info.listening !== false
  ) {
    return "listener";
  }
  const socket = info.family !== undefined || info.target?.startsWith("socket:");
  if (info.kind === "fifo" || info.kind === "file" || (info.kind === "other" && !socket)) {
    throw new ActivationError("ENOTSOCK", `${describeFd(f, info)}, not a socket: ${hint}`);
  }
  const dgram = "; serve a datagram socket (ListenDatagram=) with listenDatagram()";
  if (info.type !== undefined && info.type !== "stream") {
    const seq = info.type === "seqpacket"
      ? " (Deno does not serve SOCK_SEQPACKET; Node and Bun do)"
      : info.type === "dgram"
      ? dgram
      : "";
    throw new ActivationError("EPROTOTYPE", `${describeFd(f, info)}, not a stream socket: ${hint}${seq}`);
  }
  if (info.kind === "udp") throw new ActivationError("EPROTOTYPE", `${describeFd(f, info)}: ${hint}${dgram}`);
  if (info.listening === false) {
    if (f.name === "connection" || f.name === "unknown") return "connection";
    throw new ActivationError(
      "EISCONN",
      `${describeFd(f, info)}, where a listening socket was expected: for Accept=yes the fd is named ` +
        `"connection"; otherwise pass a listening socket`,
    );
  }
  return "listener";
}

function sameHost(a: string, b: string): boolean {
  const norm = (h: string) => h.replace(/^::ffff:/, "").toLowerCase();
  return norm(a) === norm(b);
}

/** Explains a wrong bind: what the fd is (`handed`) and where the runtime listens instead (`where`). */
export type WrongBind = (handed: string, where: string) => string;

/** Throws when the runtime's listener is not the fd (a silent wrong bind). */
function checkWhere(rt: Runtime, a: Adoption, l: RawListener, explain?: WrongBind): void {
  const { f } = a;
  // Where the runtime cannot name the fd its listener wraps, the address it
  // reports must be the fd's; an fd the cheap probe left untold (no FFI, no
  // TCP handle: a named TCP socket) is then read from the /proc tables.
  if (l.sameFd === undefined && a.info.kind === "other" && a.info.target !== "socket:[?]") {
    try {
      a.info = inspectWith(rt, f.fd);
    } catch { /* closed by the runtime: nothing to compare */ }
  }
  const info = a.info;
  const where = l.addr === undefined ? "an address it does not report" : formatAddr(l.addr);
  const wrong = l.sameFd === false ||
    (l.sameFd === undefined && (
      (info.kind === "unix" && l.addr?.transport === "tcp") ||
      (info.kind === "tcp" && info.port !== undefined &&
        (l.addr?.transport !== "tcp" || l.addr.port !== info.port ||
          !sameHost(l.addr.hostname, info.address!)))
    ));
  if (wrong) {
    l.close();
    const { what, where: at } = fdFacts(info);
    const handed = `fd ${f.fd} "${f.name}" (a ${what}${at ? ` on ${at}` : ""})`;
    throw new ActivationError(
      "EADDRNOTAVAIL",
      explain?.(handed, where) ??
        `The runtime was handed ${handed} but listens on ${where}: it ignored the fd. The listener was ` +
          "closed and nothing was served; please report this with `socket-activate inspect` output",
    );
  }
}

const warned = new Set<string>();

function warnOnce(rt: Runtime, message: string): void {
  const key = message.replace(/\d+/g, "#");
  if (warned.has(key)) return;
  warned.add(key);
  rt.write("stderr", `socket-activate: ${message}\n`);
}

/** @internal An inherited fd, checked and claimed, ready for a runtime to serve. */
export interface Adoption {
  f: ListenFd;
  info: FdInfo;
  /** The runtime's handle already opened on the fd (Node), to serve through. */
  handle: unknown;
  mode: "listener" | "connection";
}

/**
 * @internal Picks the fd for `options` (undefined when not activated), checks
 * what it is, claims it and marks it close-on-exec: every listen flavour
 * (listen, the native ones) goes through here and then through
 * {@linkcode verifyListener}.
 */
export function adopt(rt: Runtime, options: { name?: string; index?: number }): Adoption | undefined {
  const fds = activationFds();
  const f = choose(rt, fds, options);
  if (f === undefined) return undefined;
  return adoptStream(rt, f, fds.length);
}

/**
 * @internal Picks the fd for `options` (undefined when not activated), claims
 * it and marks it close-on-exec, checking nothing of what it is: for the
 * flavours that are not stream listeners (listenDatagram).
 */
export function adoptFd(rt: Runtime, options: { name?: string; index?: number }): ListenFd | undefined {
  const f = choose(rt, activationFds(), options);
  if (f === undefined) return undefined;
  claimAndCloexec(rt, f);
  return f;
}

function claimAndCloexec(rt: Runtime, f: ListenFd): void {
  if (!claim(f.fd)) {
    throw new ActivationError("EBUSY", `fd ${f.fd} "${f.name}" is already served by another listen()`);
  }
  if (rt.setCloexec(f.fd) === "unknown") {
    warnOnce(
      rt,
      `cannot mark fd ${f.fd} close-on-exec in ${rt.name} without FFI: child processes will inherit ` +
        "the listening socket (run Deno with --allow-ffi to prevent it)",
    );
  }
}

function adoptStream(rt: Runtime, f: ListenFd, count: number): Adoption {
  // Without FFI (Node) the /proc TCP tables tell a TCP socket's state only
  // in milliseconds: the runtime's own TCP handle goes first (Node), then the
  // unix and UDP tables (microseconds). Failing both, a named fd skips the
  // TCP tables (systemd names every fd and an Accept=yes one "connection";
  // listen({ fd }) fails on anything but a stream socket, and the handle
  // tells which fd it wraps); only an unnamed one pays for them.
  let info: FdInfo;
  let handle: unknown;
  try {
    const tcp = rt.openTcp?.(f.fd);
    if (tcp) {
      handle = tcp.handle;
      info = {
        fd: f.fd,
        kind: "tcp",
        type: "stream",
        family: tcp.family,
        listening: !tcp.connected,
        address: tcp.address,
        port: tcp.port,
      };
    } else {
      info = inspectWith(rt, f.fd, true);
      if (info.kind === "other" && info.target?.startsWith("socket:") && f.name === "unknown") {
        info = inspectWith(rt, f.fd);
      }
    }
  } catch (e) {
    // Deno without --allow-ffi and without -A may read neither /proc nor the
    // socket: serve through node:net, which takes the fd as it is, and say so.
    if (!(e instanceof ActivationError && e.code === "EPERM")) throw e;
    info = { fd: f.fd, kind: "other", target: "socket:[?]" };
    warnOnce(rt, `cannot inspect fd ${f.fd} in ${rt.name} (${e.message}); serving it unchecked`);
  }
  if (runtimeOwn(info)) throw notPassed(count, f.fd, info.target);
  const mode = info.listening === undefined && f.name === "connection"
    ? "connection"
    : checkStream(f, info, rt.name);
  claimAndCloexec(rt, f);
  // Node serves a seqpacket listener through a pipe handle of its own (runtimes/node_api/net.ts).
  if (info.type === "seqpacket" && rt.name === "node") handle = { seqpacket: f.fd };
  return { f, info, handle, mode };
}

/**
 * @internal After a runtime listened on an adopted fd: throws (and closes the
 * listener) when it listens somewhere else; returns where it listens.
 */
export function verifyListener(a: Adoption, l: RawListener, explain?: WrongBind): Addr {
  checkWhere(getRuntime(), a, l, explain);
  if (l.addr?.transport === "tcp") return l.addr;
  // Deno's node:net reports no address for a unix socket it listens on by
  // fd; without FFI or -A the fd is unchecked (kind "other"), so the path is
  // unknown: a unix address without one, rather than TCP ":0".
  if (a.info.kind === "unix" || (a.info.kind === "other" && l.addr === undefined)) {
    return { transport: "unix", path: a.info.address ?? "" };
  }
  return { transport: "tcp", hostname: a.info.address ?? "", port: a.info.port ?? 0 };
}

/** @internal The error for an adopted fd the runtime failed to listen on. */
export function listenFailed(rt: Runtime, a: Adoption, e: unknown): ActivationError {
  release(a.f.fd);
  let full = a.info;
  try {
    full = inspectWith(rt, a.f.fd); // a precise error where the cheap probe was not
  } catch { /* the runtime closed the fd on failure */ }
  checkStream(a.f, full, rt.name);
  if (full.target === "socket:[?]") {
    return new ActivationError(
      "ENOTSOCK",
      `fd ${a.f.fd} "${a.f.name}" is a socket ${rt.name} could not inspect, and listening on it failed: ${e}. ` +
        `If it is one connection (Accept=yes), name it "connection" (systemd does; systemd-socket-activate ` +
        "--fdname=connection), or grant --allow-ffi so it can be inspected",
    );
  }
  return new ActivationError("ENOTSOCK", `${describeFd(a.f, full)}, and listening on it failed: ${e}`);
}

async function activatedServer(
  rt: Runtime,
  a: Adoption,
  o: ListenOptions,
  handler: ConnHandler,
): Promise<Server> {
  const { f, info, handle, mode } = a;
  const net = await rt.net();
  const tracker = new Tracker(o, handler);
  if (mode === "connection") {
    let conn: Conn;
    try {
      conn = await net.connFd(f.fd, handle);
    } catch (e) {
      release(f.fd);
      throw new ActivationError("ENOTSOCK", `${describeFd(f, info)} but could not be opened: ${e}`);
    }
    tracker.accept(conn);
    conn.closed.then(() => tracker.close());
    return { ...tracker.server(true, conn.localAddr, f, () => {}), remoteAddr: conn.remoteAddr };
  }
  let l: RawListener;
  try {
    l = await net.listenFd(f.fd, (c) => tracker.accept(c), handle);
  } catch (e) {
    throw listenFailed(rt, a, e);
  }
  return tracker.server(true, verifyListener(a, l), f, () => l.close());
}

/** @internal Where a fallback listens: the default host filled in. */
export function fallbackTarget(fb: Fallback): Target {
  return "path" in fb ? { path: fb.path } : { hostname: fb.hostname ?? "0.0.0.0", port: fb.port };
}

/**
 * @internal The error for a fallback that could not be opened: EADDRINUSE
 * when something listens there already, EPERM when this process may not
 * listen there, EADDRNOTAVAIL otherwise.
 */
export function fallbackFailed(target: Target, e: unknown): ActivationError {
  const where = "path" in target ? target.path : `${target.hostname}:${target.port}`;
  // Node and Bun set an errno `code`; Deno names its error classes.
  const code = (e as { code?: string })?.code ?? (e as Error)?.name;
  const why = `(${code}: ${(e as Error)?.message})`;
  if (code === "EADDRINUSE" || code === "AddrInUse") {
    return new ActivationError(
      "EADDRINUSE",
      `Not socket-activated, and the fallback ${where} is already in use ${why}: stop what listens there, ` +
        "choose another fallback, or start the program under the service manager",
    );
  }
  if (code === "EACCES" || code === "EPERM" || code === "PermissionDenied" || code === "NotCapable") {
    const port = "port" in target ? target.port : undefined;
    const fix = code === "NotCapable"
      ? "run Deno with --allow-net"
      : port !== undefined && port > 0 && port < 1024
      ? "a port below 1024 needs root or CAP_NET_BIND_SERVICE (AmbientCapabilities= in the unit)"
      : "choose a fallback this user may listen on";
    return new ActivationError(
      "EPERM",
      `Not socket-activated, and this process may not listen on the fallback ${where} ${why}: ${fix}, ` +
        "or start the program under the service manager",
    );
  }
  return new ActivationError(
    "EADDRNOTAVAIL",
    `Not socket-activated, and the fallback ${where} could not be opened ${why}: ` +
      "choose another fallback, or start the program under the service manager",
  );
}

/** @internal Where a fallback listener listens, as far as the runtime does not say. */
export function fallbackAddr(target: Target, l: RawListener): Addr {
  return l.addr ??
    ("path" in target
      ? { transport: "unix", path: target.path }
      : { transport: "tcp", hostname: target.hostname, port: target.port });
}

async function fallbackServer(rt: Runtime, o: ListenOptions, handler: ConnHandler): Promise<Server> {
  const target = fallbackTarget(o.fallback!);
  const net = await rt.net();
  const tracker = new Tracker(o, handler);
  let l: RawListener;
  try {
    l = await net.listenAddr(target, (c) => tracker.accept(c));
  } catch (e) {
    throw fallbackFailed(target, e);
  }
  return tracker.server(false, fallbackAddr(target, l), undefined, () => l.close());
}

// What a peer's leaving looks like in each runtime: an errno `code` (Node,
// Bun, Deno's node:net) or one of Deno's error classes (its own sockets).
const PEER_GONE: Record<string, string> = {
  ECONNRESET: "the peer reset it",
  ConnectionReset: "the peer reset it",
  EPIPE: "broken pipe: the peer had gone when the handler wrote",
  BrokenPipe: "broken pipe: the peer had gone when the handler wrote",
  ECONNABORTED: "aborted",
  ConnectionAborted: "aborted",
  ETIMEDOUT: "the peer stopped answering",
  TimedOut: "the peer stopped answering",
};
const PEER_CODE: Record<string, string> = {
  ConnectionReset: "ECONNRESET",
  BrokenPipe: "EPIPE",
  ConnectionAborted: "ECONNABORTED",
  TimedOut: "ETIMEDOUT",
};

/** @internal What happened, where `e` says the peer went away; undefined for any other error. */
export function peerGone(e: unknown): string | undefined {
  const { code, name } = (e ?? {}) as { code?: unknown; name?: unknown };
  const key = typeof code === "string" && code in PEER_GONE
    ? code
    : typeof name === "string" && name in PEER_CODE
    ? name
    : undefined;
  if (key === undefined) return undefined;
  return `${PEER_GONE[key]} (${PEER_CODE[key] ?? key})`;
}

function connText(conn: Conn): string {
  let from = "an unknown peer", on = "";
  try {
    from = formatAddr(conn.remoteAddr);
    on = ` on ${formatAddr(conn.localAddr)}`;
  } catch { /* a runtime that cannot say after the reset */ }
  return `from ${from}${on}`;
}

/**
 * @internal Counts connections, runs the handler, and drains on close; the
 * idle exit and the watchdog hang on it too. serve() gives it every HTTP
 * connection with a handler that does nothing.
 */
export class Tracker {
  readonly open = new Set<Conn>();
  closing: Promise<void> | undefined;
  resolveFinished!: () => void;
  readonly finished = new Promise<void>((r) => (this.resolveFinished = r));
  stopAccepting: () => void | Promise<void> = () => {};
  drained = false;
  stopWatchdog: (() => void) | undefined;
  idleTimer: ReturnType<typeof setTimeout> | undefined;
  idleExit = false;

  readonly options: ListenOptions;
  readonly handler: ConnHandler;

  constructor(options: ListenOptions, handler: ConnHandler) {
    this.options = options;
    this.handler = handler;
  }

  accept(conn: Conn): void {
    // A connection the runtime accepted before the stop but delivers during
    // the drain (Deno's, a timer late) is served like the others: the kernel
    // cannot take it back. Only one arriving after the drain is closed.
    if (this.drained) {
      conn.close();
      return;
    }
    this.open.add(conn);
    this.idle();
    if (conn instanceof StreamConn) conn.watcher = this;
    else conn.closed.then(() => this.gone(conn));
    let result;
    try {
      result = this.handler(conn);
    } catch (e) {
      this.fail(e, conn);
      return;
    }
    if (result && typeof (result as Promise<void>).then === "function") {
      (result as Promise<void>).then(undefined, (e) => this.fail(e, conn));
    }
  }

  /** A connection has closed. */
  gone(conn: Conn): void {
    this.open.delete(conn);
    this.idle();
  }

  /** (Re)arms the idle exit while no connection is open, disarms it otherwise. */
  idle(): void {
    // Only a timer that exists is cleared: Deno 2.9 loads its Node timers on
    // the first setTimeout or clearTimeout (denoland/deno#35373), about 3 ms
    // that would otherwise fall between an activated start and its first
    // connection.
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (!this.idleExit || this.open.size > 0 || this.closing) return;
    const rt = getRuntime();
    this.idleTimer = setTimeout(() => {
      // systemd starts the service again on the next connection: the
      // lazy-start half of socket activation.
      this.close().then(() => rt.exit(0));
    }, this.options.idleExit! * 1000);
  }

  fail(e: unknown, conn: Conn): void {
    if (this.options.onError) this.options.onError(e, conn);
    else {
      // A peer that resets or leaves mid-exchange is the network's doing, not
      // a bug: a stack trace for each would bury the real failures in a
      // journal. One line says which connection and what happened.
      const gone = peerGone(e);
      getRuntime().write(
        "stderr",
        gone
          ? `socket-activate: connection ${connText(conn)}: ${gone}\n`
          : `socket-activate: connection handler failed: ${(e as Error)?.stack ?? e}\n`,
      );
    }
    conn.close();
  }

  /** Takes the server out of the default stop once it has closed (src/_signals.ts). */
  unguard: () => void = () => {};

  close(): Promise<void> {
    return (this.closing ??= (async () => {
      clearTimeout(this.idleTimer);
      this.stopWatchdog?.();
      const timeout = this.options.drainTimeout ?? 10_000;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const expired = new Promise<void>((r) => (timer = setTimeout(r, timeout)));
      await Promise.race([this.stopAccepting(), expired]);
      if (this.open.size > 0) {
        await Promise.race([Promise.all([...this.open].map((c) => c.closed)), expired]);
        for (const c of this.open) c.close();
        await Promise.all([...this.open].map((c) => c.closed));
      }
      clearTimeout(timer);
      this.drained = true;
      this.unguard();
      this.resolveFinished();
    })());
  }

  server(activated: boolean, addr: Addr, f: ListenFd | undefined, stop: () => void | Promise<void>): Server {
    this.stopAccepting = stop;
    if (this.options.watchdog) {
      this.stopWatchdog = keepAlive((e) =>
        warnOnce(getRuntime(), `watchdog ping failed: ${(e as Error)?.message ?? e}`)
      );
    }
    // Only a socket the service manager holds brings the service back.
    this.idleExit = activated && this.options.idleExit !== undefined;
    this.idle();
    this.unguard = guard({
      busy: () => this.open.size,
      close: () => this.close(),
      drainTimeout: this.options.drainTimeout ?? 10_000,
    }, this.options.signals);
    // deno-lint-ignore no-this-alias
    const t = this;
    return {
      activated,
      addr,
      fd: f?.fd,
      name: f?.name,
      get connections() {
        return t.open.size;
      },
      close: () => this.close(),
      finished: this.finished,
    };
  }
}

// Putting an inherited listening socket under a listener the runtime opened
// itself, for runtimes whose own listeners take no fd: Bun.serve
// (runtimes/bun/http_fast.ts) and Deno.listen (runtimes/deno/net.ts).
//
// The runtime opens a private listener; then, in the same synchronous run
// (its loop cannot accept in between), dup3() puts the inherited socket on
// that listener's fd number and epoll_ctl() registers it in the runtime's
// epoll set with the exact events and user data the old one had, read from
// /proc/self/fdinfo (closing the private socket, its last reference, took
// the old entry out). The runtime then accepts on the inherited socket as if
// it had opened it. Every step is checked: one listener found by its
// address, one epoll entry found by its inode, and afterwards the fd shown to
// be the inherited socket, in the epoll set. Whatever fails, the inherited fd
// stays open and listening.

// deno-lint-ignore no-explicit-any
type Any = any;

const F_GETFL = 3, F_SETFL = 4, O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1, SO_TYPE = 3, SO_ACCEPTCONN = 30, SO_DOMAIN = 39, SOCK_STREAM = 1;
export const AF_UNIX = 1, AF_INET = 2, AF_INET6 = 10;
const EPOLL_CTL_ADD = 1;
// struct epoll_event is packed on x86-64 (12 bytes), naturally aligned elsewhere.
const EPOLL_EVENT: Record<string, { size: number; data: number }> = {
  x64: { size: 12, data: 4 },
  arm64: { size: 16, data: 8 },
};

/** What a takeover needs of the system, however the runtime reaches it. */
export interface Sys {
  fcntl(fd: number, cmd: number, arg: number): number;
  getsockopt(fd: number, level: number, name: number, value: Uint8Array, len: Uint8Array): number;
  getsockname(fd: number, addr: Uint8Array, len: Uint8Array): number;
  /** getpeername(2): needed only to take over a connected socket. */
  getpeername?(fd: number, addr: Uint8Array, len: Uint8Array): number;
  dup3(oldfd: number, newfd: number, flags: number): number;
  epollCtl(epfd: number, op: number, fd: number, event: Uint8Array): number;
  /** readlink(2); undefined when the path does not resolve. */
  readlink(path: string): string | undefined;
  /** A /proc file as Latin-1 text; undefined when it cannot be read. */
  readText(path: string): string | undefined;
  /** The fds open in this process. */
  fds(): number[];
  /** The CPU architecture as Node names it (x64, arm64). */
  arch: string;
}

/** An int socket option (SOL_SOCKET), or undefined where getsockopt fails. */
export function intOpt(s: Sys, fd: number, name: number): number | undefined {
  const v = new Int32Array(1), len = new Uint32Array([4]);
  return s.getsockopt(fd, SOL_SOCKET, name, new Uint8Array(v.buffer), new Uint8Array(len.buffer)) === 0
    ? v[0]
    : undefined;
}

/** getsockname as bytes; undefined when it fails. */
export function sockname(s: Sys, fd: number): Uint8Array | undefined {
  const a = new Uint8Array(128), len = new Uint32Array([128]);
  if (s.getsockname(fd, a, new Uint8Array(len.buffer)) !== 0) return undefined;
  return a.subarray(0, len[0]);
}

/** getpeername as bytes; undefined when it fails or Sys has none. */
export function peername(s: Sys, fd: number): Uint8Array | undefined {
  const a = new Uint8Array(128), len = new Uint32Array([128]);
  if (s.getpeername === undefined || s.getpeername(fd, a, new Uint8Array(len.buffer)) !== 0) return undefined;
  return a.subarray(0, len[0]);
}

type SockAddr =
  | { transport: "tcp"; hostname: string; port: number }
  | { transport: "unix"; path: string };

/** A sockaddr as an address (unix: the path, "@name" for an abstract one). */
export function toAddr(sa: Uint8Array): SockAddr | undefined {
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

/**
 * RFC 5952 text of eight hex groups (the longest run of two or more zeros
 * becomes ::). The same as src/inspect_fd.ts's compressIpv6, kept as a copy:
 * importing that one from here makes tsup split inspect_fd.ts into a chunk of
 * its own, one more file for every `import "socket-activate"` in Node (5
 * instead of 4; about 0.6 ms each in its ESM loader, docs/benchmarks.md "Footprint").
 */
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
export function inode(s: Sys, fd: number): string | undefined {
  const target = s.readlink(`/proc/self/fd/${fd}`);
  return target === undefined ? undefined : /^socket:\[(\d+)\]$/.exec(target)?.[1];
}

/** The open fds of this process that are epoll instances. */
export function epollFds(s: Sys): number[] {
  return s.fds().filter((fd) => s.readlink(`/proc/self/fd/${fd}`) === "anon_inode:[eventpoll]");
}

/** Every epoll entry for `fd` whose file is socket inode `ino`: [epoll fd, events, data]. */
function epollEntries(s: Sys, eps: number[], fd: number, ino: string): [number, number, bigint][] {
  const found: [number, number, bigint][] = [];
  const hex = BigInt(ino).toString(16);
  const seen = new Set<string>();
  for (const ep of eps) {
    const text = s.readText(`/proc/self/fdinfo/${ep}`);
    if (text === undefined) continue;
    // One epoll instance may sit on several fds (Deno's mio holds a dup of
    // its own): each instance counts once, by its inode.
    const instance = /^ino:\s*(\S+)/m.exec(text)?.[1] ?? `fd ${ep}`;
    if (seen.has(instance)) continue;
    seen.add(instance);
    const re =
      /^tfd:\s*(\d+)\s+events:\s*([0-9a-f]+)\s+data:\s*([0-9a-f]+)\s+pos:\s*\d+\s+ino:\s*([0-9a-f]+)/gm;
    for (let m; (m = re.exec(text)) !== null;) {
      if (Number(m[1]) === fd && m[4] === hex) found.push([ep, parseInt(m[2], 16), BigInt("0x" + m[3])]);
    }
  }
  return found;
}

/** The listening sockets among this process's fds whose address is `sa`. */
function listenersAt(s: Sys, sa: Uint8Array, except: number): number[] {
  return s.fds().filter((fd) =>
    fd !== except && intOpt(s, fd, SO_ACCEPTCONN) === 1 && sameBytes(sockname(s, fd), sa)
  );
}

/** The client sockets among this process's fds connected to `sa`. */
function clientsOf(s: Sys, sa: Uint8Array, except: number): number[] {
  return s.fds().filter((fd) =>
    fd !== except && intOpt(s, fd, SO_ACCEPTCONN) === 0 && sameBytes(peername(s, fd), sa)
  );
}

/** The address family of `fd` when it is a listening stream socket (TCP or unix), else undefined. */
export function listeningFamily(s: Sys, fd: number): number | undefined {
  return streamFamily(s, fd, 1);
}

/** The address family of `fd` when it is a connected stream socket (TCP or unix), else undefined. */
export function connectedFamily(s: Sys, fd: number): number | undefined {
  return peername(s, fd) === undefined ? undefined : streamFamily(s, fd, 0);
}

function streamFamily(s: Sys, fd: number, acceptConn: number): number | undefined {
  const family = intOpt(s, fd, SO_DOMAIN);
  if (intOpt(s, fd, SO_ACCEPTCONN) !== acceptConn || intOpt(s, fd, SO_TYPE) !== SOCK_STREAM) return undefined;
  return family === AF_INET || family === AF_INET6 || family === AF_UNIX ? family : undefined;
}

/**
 * Makes `fd` non-blocking: event loops accept until EAGAIN, and a blocking
 * socket (systemd's default, NonBlocking=no) would hang theirs once the
 * backlog is empty. False when fcntl fails.
 */
export function setNonblocking(s: Sys, fd: number): boolean {
  const fl = s.fcntl(fd, F_GETFL, 0);
  return fl >= 0 && ((fl & O_NONBLOCK) !== 0 || s.fcntl(fd, F_SETFL, fl | O_NONBLOCK) === 0);
}

/** The sockaddr of a private listener: 127.0.0.1:port, or the unix path. */
export function privateSockaddr(path: string | undefined, port: number): Uint8Array {
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

/** Why a takeover cannot even be tried here, or undefined. */
export function unsupported(s: Sys): string | undefined {
  return EPOLL_EVENT[s.arch] === undefined ? `struct epoll_event on ${s.arch}` : undefined;
}

/**
 * After the runtime opened its private listener at `privateSa`: puts the
 * inherited listening socket `fd` on that listener's fd number. Returns that
 * number, "untouched" when a check failed before anything changed, or
 * "swapped" when one failed after dup3 (the runtime's listener must then be
 * closed; that closes only the dup, never `fd`). With `role` "client", `fd`
 * is a connected socket (Accept=yes) and goes instead on the fd of the
 * runtime's connection to `privateSa`, the one socket whose peer it is.
 */
export function takeOver(
  s: Sys,
  fd: number,
  privateSa: Uint8Array,
  role: "listener" | "client" = "listener",
): number | "untouched" | "swapped" {
  const layout = EPOLL_EVENT[s.arch];
  const fdIno = inode(s, fd);
  if (layout === undefined || fdIno === undefined) return "untouched";
  const candidates = role === "listener" ? listenersAt(s, privateSa, fd) : clientsOf(s, privateSa, fd);
  if (candidates.length !== 1) return "untouched";
  const n = candidates[0];
  const nIno = inode(s, n);
  const eps = epollFds(s);
  const entries = nIno === undefined ? [] : epollEntries(s, eps, n, nIno);
  if (entries.length !== 1) return "untouched";
  const [ep, events, data] = entries[0];

  if (s.dup3(fd, n, O_CLOEXEC) !== n) return "untouched";
  const ev = new Uint8Array(layout.size);
  const v = new DataView(ev.buffer);
  v.setUint32(0, events, true);
  v.setBigUint64(layout.data, data, true);
  if (s.epollCtl(ep, EPOLL_CTL_ADD, n, ev) !== 0) return "swapped";
  // Proof: fd n is now the inherited socket, in the epoll set as before.
  if (inode(s, n) !== fdIno || epollEntries(s, eps, n, fdIno).length !== 1) return "swapped";
  return n;
}

/** The Sys of Node's API (Bun): node:fs for /proc, `libc` for the calls. */
export function nodeFsSys(
  fs: Any,
  arch: string,
  libc: Pick<Sys, "fcntl" | "getsockopt" | "getsockname" | "dup3" | "epollCtl">,
): Sys {
  return {
    ...libc,
    arch,
    readlink: (path) => {
      try {
        return fs.readlinkSync(path);
      } catch {
        return undefined;
      }
    },
    readText: (path) => {
      try {
        return fs.readFileSync(path, "latin1");
      } catch {
        return undefined;
      }
    },
    fds: () => {
      const out: number[] = [];
      for (const name of fs.readdirSync("/proc/self/fd")) out.push(Number(name));
      return out;
    },
  };
}

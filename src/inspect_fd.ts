import { ActivationError } from "./errors.ts";
import { getRuntime, type Runtime, type SockInfo } from "./_runtime.ts";

/**
 * What kind of thing an fd is.
 *
 * @example Tell a FIFO from a socket
 * ```ts
 * import { type FdKind, inspectFd, listenFds } from "@socket-activate/socket-activate";
 *
 * for (const { fd } of listenFds()) {
 *   const kind: FdKind = inspectFd(fd).kind;
 *   console.log(`fd ${fd}: ${kind === "fifo" ? "a ListenFIFO= pipe" : kind}`);
 * }
 * ```
 */
export type FdKind = "tcp" | "udp" | "unix" | "fifo" | "file" | "other";

/**
 * What an fd is, as {@linkcode inspectFd} finds it.
 *
 * @example Find the TCP listener
 * ```ts
 * import { type FdInfo, inspectFd, listenFds } from "@socket-activate/socket-activate";
 *
 * const tcp = listenFds().map(({ fd }) => inspectFd(fd)).find((i: FdInfo) => i.kind === "tcp" && i.listening);
 * console.log(tcp ? `listening on ${tcp.address}:${tcp.port}` : "no TCP listener was passed");
 * ```
 */
export interface FdInfo {
  /** The fd number. */
  fd: number;
  /** tcp / udp / unix sockets, FIFOs, files (and devices), or other. */
  kind: FdKind;
  /** Socket type, for sockets. */
  type?: "stream" | "dgram" | "seqpacket" | "raw";
  /** Address family, for sockets. */
  family?: "ipv4" | "ipv6" | "unix" | "netlink" | "packet" | "vsock" | "other";
  /** Whether the socket is listening (SO_ACCEPTCONN), for sockets. */
  listening?: boolean;
  /**
   * The local address, for sockets: an IP address, a unix path, `@name` for
   * an abstract unix name, or `""` for an unnamed unix socket.
   */
  address?: string;
  /** The local port, for TCP and UDP sockets. */
  port?: number;
  /** What /proc/self/fd says the fd points to: a path, `pipe:[…]`, `socket:[…]`. */
  target?: string;
  /** Whether FD_CLOEXEC is set (the fd would not pass to a child process). */
  cloexec?: boolean;
}

const FAMILIES: Record<number, FdInfo["family"]> = {
  1: "unix",
  2: "ipv4",
  10: "ipv6",
  16: "netlink",
  17: "packet",
  40: "vsock",
};
const TYPES: Record<number, FdInfo["type"]> = { 1: "stream", 2: "dgram", 3: "raw", 5: "seqpacket" };

/**
 * Tells what an fd is: a TCP, UDP or unix socket (its type, whether it
 * listens, its local address), a FIFO, a file, or something else. Reads
 * `/proc/self/fd` and `/proc/net/*`, cheapest table first, or asks the fd
 * itself over FFI (fcntl, getsockopt, getsockname, fstat, readlink) where the
 * runtime has FFI at hand (Bun; Deno with `--allow-ffi`), which is cheaper
 * than walking the TCP tables. Deno refuses `/proc` without `-A`, so there
 * it needs `--allow-ffi` or `-A`.
 *
 * @param fd The fd number.
 * @returns What the fd is.
 * @throws {ActivationError} `EBADF` when the fd is not open; `EPERM` in Deno
 * with neither `--allow-ffi` nor `-A`, naming `--allow-ffi`.
 *
 * @example Check that fd 3 is a listening TCP socket
 * ```ts
 * import { inspectFd } from "@socket-activate/socket-activate";
 *
 * const info = inspectFd(0);
 * console.log(info.kind, info.target);
 * ```
 */
export function inspectFd(fd: number): FdInfo {
  if (!Number.isInteger(fd) || fd < 0) {
    throw new TypeError(`Cannot inspect fd ${JSON.stringify(fd)}: an fd is a whole number, 0 or more`);
  }
  return inspectWith(getRuntime(), fd);
}

/**
 * @internal inspectFd against a given runtime. The fast mode (listen()'s)
 * leaves out what costs and what listen() does not use: the FD_CLOEXEC flag
 * (a /proc read in Node), the /proc/self/fd target of a socket the runtime
 * can ask itself over FFI, and, without FFI, the TCP tables (milliseconds): a
 * socket found in neither the unix nor the UDP tables is then left as kind
 * "other" for the runtime's own listen() to tell.
 */
export function inspectWith(rt: Runtime, fd: number, fast = false): FdInfo {
  if (fast) {
    const sock = rt.sockInfo(fd);
    if (sock === "EBADF") throw new ActivationError("EBADF", `fd ${fd} is not open`);
    if (sock !== undefined && sock !== "ENOTSOCK") return fromSockInfo({ fd, kind: "other" }, sock);
  }
  const state = fast ? "unknown" : rt.fdState(fd);
  const target = rt.readLink(`/proc/self/fd/${fd}`);
  if (state === "closed" || (state === "unknown" && target === undefined)) {
    throw new ActivationError("EBADF", `fd ${fd} is not open`);
  }
  const info: FdInfo = { fd, kind: "other" };
  if (target !== undefined) info.target = target;
  // "unknown": the runtime's fdState already tried fcntl and fdinfo.
  if (state !== "unknown") info.cloexec = state === "cloexec";

  const sock = rt.sockInfo(fd);
  if (sock !== undefined && sock !== "ENOTSOCK" && sock !== "EBADF") {
    return fromSockInfo(info, sock);
  }
  const m = target === undefined ? null : /^socket:\[(\d+)\]$/.exec(target);
  if (m) return fromProcNet(rt, info, m[1], fast);
  if (target !== undefined && target.startsWith("pipe:")) {
    info.kind = "fifo";
  } else if (target !== undefined && target.startsWith("/")) {
    // The fd itself where FFI can ask it (Deno may stat no path without
    // --allow-read); the path it names otherwise.
    const own = rt.fdKind?.(fd);
    const kind = own === "fifo" || own === "file" ? own : rt.statKind(target);
    info.kind = kind === "fifo" ? "fifo" : kind === "file" || kind === "other" ? "file" : "other";
  }
  return info;
}

function fromSockInfo(info: FdInfo, s: SockInfo): FdInfo {
  info.family = FAMILIES[s.domain] ?? "other";
  info.type = TYPES[s.type] ?? "raw";
  info.listening = s.listening;
  const a = s.sockname;
  if (s.domain === 1) {
    info.kind = "unix";
    info.address = unixName(a.subarray(2));
  } else if (s.domain === 2 || s.domain === 10) {
    info.kind = s.type === 1 ? "tcp" : s.type === 2 ? "udp" : "other";
    info.port = (a[2] << 8) | a[3];
    info.address = s.domain === 2 ? a.subarray(4, 8).join(".") : ipv6(a.subarray(8, 24));
  }
  return info;
}

function unixName(path: Uint8Array): string {
  if (path.length === 0) return "";
  if (path[0] === 0) return "@" + latin1(path.subarray(1));
  const end = path.indexOf(0);
  return new TextDecoder().decode(end < 0 ? path : path.subarray(0, end));
}

function latin1(b: Uint8Array): string {
  let s = "";
  for (const c of b) s += String.fromCharCode(c);
  return s;
}

function ipv6(b: Uint8Array): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i] << 8) | b[i + 1]).toString(16));
  // IPv4-mapped addresses read as ::ffff:a.b.c.d, like Node's address().
  if (groups.slice(0, 5).every((g) => g === "0") && groups[5] === "ffff") {
    return "::ffff:" + Array.from(b.subarray(12, 16)).join(".");
  }
  return compressIpv6(groups);
}

function compressIpv6(groups: string[]): string {
  let bestStart = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLen && j - i > 1) [bestStart, bestLen] = [i, j - i];
    i = j;
  }
  if (bestStart < 0) return groups.join(":");
  return groups.slice(0, bestStart).join(":") + "::" + groups.slice(bestStart + bestLen).join(":");
}

// /proc/net tables, cheapest first: the TCP tables cost milliseconds each
// (the kernel walks the whole established hash), unix and UDP microseconds.
const TABLES = [
  ["unix", "/proc/net/unix"],
  ["udp", "/proc/net/udp"],
  ["udp", "/proc/net/udp6"],
  ["tcp", "/proc/net/tcp"],
  ["tcp", "/proc/net/tcp6"],
] as const;

function fromProcNet(rt: Runtime, info: FdInfo, inode: string, skipTcp: boolean): FdInfo {
  for (const [kind, path] of TABLES) {
    if (skipTcp && kind === "tcp") return info;
    const text = rt.readText(path);
    if (text === undefined) continue;
    const line = findInode(text, kind === "unix" ? 6 : 9, inode);
    if (line === undefined) continue;
    info.kind = kind;
    if (kind === "unix") return fromUnixLine(info, line);
    return fromInetLine(info, line, path.endsWith("6"));
  }
  info.family = "other";
  return info;
}

function findInode(text: string, column: number, inode: string): string[] | undefined {
  // A cheap substring test first; then the exact column, since an inode's
  // digits can appear inside another field.
  let from = 0;
  for (;;) {
    const at = text.indexOf(" " + inode, from);
    if (at < 0) return undefined;
    const start = text.lastIndexOf("\n", at) + 1;
    const endNl = text.indexOf("\n", at);
    const line = text.slice(start, endNl < 0 ? text.length : endNl);
    const cols = line.trim().split(/\s+/);
    if (cols[column] === inode) {
      // The unix path may hold spaces: keep it whole.
      if (column === 6) {
        const m = /^\s*\S+(?:\s+\S+){6}(?: (.*))?$/.exec(line);
        return [...cols.slice(0, 7), m?.[1] ?? ""];
      }
      return cols;
    }
    from = at + 1;
  }
}

function fromUnixLine(info: FdInfo, cols: string[]): FdInfo {
  // Num RefCount Protocol Flags Type St Inode [Path]
  info.family = "unix";
  info.type = TYPES[parseInt(cols[4], 16)] ?? "raw";
  info.listening = (parseInt(cols[3], 16) & 0x10000) !== 0; // __SO_ACCEPTCON
  info.address = cols[7] ?? "";
  return info;
}

function fromInetLine(info: FdInfo, cols: string[], v6: boolean): FdInfo {
  // sl local_address rem_address st ...; addresses are 32-bit words in host
  // (little-endian on x86 and arm64) order, the port big-endian hex.
  const [addr, port] = cols[1].split(":");
  const bytes = new Uint8Array(v6 ? 16 : 4);
  for (let w = 0; w < bytes.length / 4; w++) {
    const word = parseInt(addr.slice(w * 8, w * 8 + 8), 16);
    for (let k = 0; k < 4; k++) bytes[w * 4 + k] = (word >>> (8 * k)) & 0xff;
  }
  info.family = v6 ? "ipv6" : "ipv4";
  info.type = info.kind === "tcp" ? "stream" : "dgram";
  info.address = v6 ? ipv6(bytes) : bytes.join(".");
  info.port = parseInt(port, 16);
  const st = parseInt(cols[3], 16);
  info.listening = info.kind === "tcp" && st === 0x0a; // TCP_LISTEN
  return info;
}

// Datagrams over FFI recvfrom/sendto on an inherited fd, for the runtimes
// whose own datagram API cannot take it (Deno: any; Bun: unix). The runtime
// supplies how to wait for readability: Deno polls on FFI's thread pool, Bun
// (whose FFI calls are all synchronous) polls with a zero timeout on a timer.
// Waiting in poll() with a timeout, not in recvfrom(), lets close() take
// effect without shutting down the socket, which systemd keeps for the next
// start.
import type { Addr, RawDgram } from "../../src/_net.ts";

/** The calls, as each runtime binds them. */
export interface DgramCalls {
  /** Resolves once `pfd` (a struct pollfd for POLLIN) is readable or a short while passed: > 0 when readable. */
  wait(pfd: Uint8Array): Promise<number>;
  recvfrom(fd: number, buf: Uint8Array, flags: number, addr: Uint8Array, alen: Uint8Array): number;
  sendto(fd: number, buf: Uint8Array, flags: number, addr: Uint8Array): number;
  /** errno of the call just made (glibc's __errno_location). */
  errno(): number;
}

/**
 * `wait` for a runtime whose FFI calls are all synchronous (Bun, Node):
 * poll() with a zero timeout on a timer, backing off to 20 ms while idle, for
 * at most 100 ms a call. Fine for control sockets, not for floods.
 */
export function timerWait(poll: (pfd: Uint8Array) => number): (pfd: Uint8Array) => Promise<number> {
  let idle = 1;
  return async (pfd) => {
    const deadline = Date.now() + 100;
    while (Date.now() < deadline) {
      if (poll(pfd) > 0) {
        idle = 1;
        return 1;
      }
      await new Promise((r) => setTimeout(r, idle));
      idle = Math.min(20, idle * 2);
    }
    return 0;
  };
}

// The errno names a datagram send can fail with on Linux (asm-generic/errno).
const ERRNO: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  11: "EAGAIN",
  13: "EACCES",
  89: "EDESTADDRREQ",
  90: "EMSGSIZE",
  101: "ENETUNREACH",
  105: "ENOBUFS",
  107: "ENOTCONN",
  111: "ECONNREFUSED",
  113: "EHOSTUNREACH",
};

function fromSockaddr(a: Uint8Array, len: number): Addr {
  if (a[0] === 1) { // AF_UNIX: a path, an @abstract name, or unnamed
    const path = a.subarray(2, len);
    if (path.length === 0) return { transport: "unix", path: "" };
    if (path[0] === 0) return { transport: "unix", path: "@" + new TextDecoder().decode(path.subarray(1)) };
    const end = path.indexOf(0);
    return { transport: "unix", path: new TextDecoder().decode(end < 0 ? path : path.subarray(0, end)) };
  }
  const port = (a[2] << 8) | a[3];
  if (a[0] === 10) { // AF_INET6, little-endian sa_family
    const groups: string[] = [];
    for (let i = 8; i < 24; i += 2) groups.push(((a[i] << 8) | a[i + 1]).toString(16));
    return { transport: "udp", hostname: compress(groups), port };
  }
  return { transport: "udp", hostname: Array.from(a.subarray(4, 8)).join("."), port };
}

function compress(groups: string[]): string {
  const s = groups.join(":");
  const runs = [...s.matchAll(/(?:^|:)0(?::0)+(?:$|:)/g)].sort((x, y) => y[0].length - x[0].length);
  if (runs.length === 0) return s;
  const r = runs[0];
  return (s.slice(0, r.index) + "::" + s.slice(r.index! + r[0].length)).replace(/^:::/, "::").replace(
    /:::$/,
    "::",
  );
}

function toSockaddr(to: Addr, family: "ipv4" | "ipv6" | "unix"): Uint8Array {
  if (family === "unix" || to.transport === "unix") {
    if (family !== "unix" || to.transport !== "unix") {
      throw new TypeError("Cannot send across address families");
    }
    if (to.path === "") {
      throw new TypeError("Cannot reply to an unnamed unix socket: the sender did not bind a name");
    }
    const name = to.path.startsWith("@")
      ? new Uint8Array([0, ...new TextEncoder().encode(to.path.slice(1))])
      : new Uint8Array([...new TextEncoder().encode(to.path), 0]);
    const a = new Uint8Array(2 + name.length);
    a[0] = 1;
    a.set(name, 2);
    return a;
  }
  const host = to.hostname.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, family === "ipv4" ? "$1" : "::ffff:$1");
  if (family === "ipv4") {
    const a = new Uint8Array(16);
    a[0] = 2;
    a[2] = to.port >> 8;
    a[3] = to.port & 0xff;
    host.split(".").forEach((b, i) => (a[4 + i] = Number(b)));
    return a;
  }
  const a = new Uint8Array(28);
  a[0] = 10;
  a[2] = to.port >> 8;
  a[3] = to.port & 0xff;
  a.set(ipv6Bytes(host), 8);
  return a;
}

function ipv6Bytes(host: string): Uint8Array {
  const out = new Uint8Array(16);
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(host);
  let h = host;
  if (v4) {
    const b = v4[1].split(".").map(Number);
    h = host.slice(0, -v4[1].length) +
      `${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`;
  }
  const [head, tail] = h.includes("::") ? h.split("::") : [h, undefined];
  const hs = head ? head.split(":") : [];
  const ts = tail ? tail.split(":") : [];
  const groups = tail === undefined ? hs : [...hs, ...Array(8 - hs.length - ts.length).fill("0"), ...ts];
  groups.forEach((g, i) => {
    const v = parseInt(g || "0", 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

/** Receives on `fd` until closed; sends with sendto. */
export function ffiDgram(
  calls: DgramCalls,
  fd: number,
  family: "ipv4" | "ipv6" | "unix",
  onMessage: (data: Uint8Array, from: Addr) => void,
): RawDgram {
  let closed = false;
  (async () => {
    const pfd = new Uint8Array(8);
    const pv = new DataView(pfd.buffer);
    const buf = new Uint8Array(65536);
    const addr = new Uint8Array(128);
    const alen = new Uint8Array(4);
    while (!closed) {
      pv.setInt32(0, fd, true);
      pv.setInt16(4, 1, true); // POLLIN
      pv.setInt16(6, 0, true);
      if ((await calls.wait(pfd)) <= 0 || closed) continue;
      for (;;) {
        new DataView(alen.buffer).setUint32(0, addr.length, true);
        const n = calls.recvfrom(fd, buf, 0x40, /* MSG_DONTWAIT */ addr, alen);
        if (n < 0) break;
        onMessage(buf.slice(0, n), fromSockaddr(addr, new DataView(alen.buffer).getUint32(0, true)));
      }
    }
  })();
  return {
    addr: undefined,
    send: (data, to) => {
      const sa = toSockaddr(to, family);
      const n = calls.sendto(fd, data, 0x4000, /* MSG_NOSIGNAL */ sa);
      if (n === data.length) return Promise.resolve();
      const errno = n < 0 ? calls.errno() : 0;
      const code = n < 0 ? ERRNO[errno] ?? `errno ${errno}` : "EMSGSIZE";
      const where = to.transport === "unix" ? to.path : `${to.hostname}:${to.port}`;
      return Promise.reject(
        Object.assign(
          new Error(n < 0 ? `sendto ${where}: ${code}` : `sendto ${where} sent ${n} of ${data.length} bytes`),
          {
            code,
          },
        ),
      );
    },
    close: () => {
      closed = true;
    },
  };
}

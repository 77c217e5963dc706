// The launcher under Deno and Bun: the sockets come from libc's socket(),
// bind() and listen() over FFI, which no event loop ever watches, so nothing
// in the launcher accepts on them. Accept mode polls them off the main thread
// (a nonblocking FFI call in Deno, a worker in Bun, whose FFI has no async
// calls) and accept4()s on the main thread.
import type { Accepted, HeldSocket, Launcher, ListenSpec, NotifyChannel } from "../../src/cli/launcher.ts";
import { describeSpec, parseIPv4, parseIPv6 } from "../../src/cli/launcher.ts";
import { commonParts, errnoName, listenError } from "../node_api/launcher.ts";
import { LIBC } from "./libc.ts";

// deno-lint-ignore no-explicit-any
type Any = any;
type Fn = (...args: Any[]) => Any;

const SOCK_STREAM = 1, SOCK_DGRAM = 2, SOCK_CLOEXEC = 0o2000000, SOCK_NONBLOCK = 0o4000;
const AF_UNIX = 1, AF_INET = 2, AF_INET6 = 10;
const SOL_SOCKET = 1, SO_REUSEADDR = 2, IPPROTO_IPV6 = 41, IPV6_V6ONLY = 26;
const F_GETFD = 1, F_SETFD = 2, F_GETFL = 3, F_SETFL = 4, O_NONBLOCK = 0o4000;
const SO_RCVTIMEO = 20, MSG_DONTWAIT = 0x40;

// Deno's FFI notation; bun's is derived from it below.
const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept4: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

interface Ffi {
  sym: Record<keyof typeof SYMBOLS, Fn>;
  errno(): number;
  /**
   * poll(2) for POLLIN that waits off the main thread; the fds ready (none at
   * the timeout). Polls of one `lane` run one after another (Bun: a worker per lane).
   */
  pollAsync(fds: number[], timeoutMs: number, lane?: number): Promise<number[]>;
}

let loaded: Ffi | undefined;

function denoFfi(): Ffi {
  const D = (globalThis as Any).Deno;
  let lib;
  try {
    lib = D.dlopen(LIBC, {
      ...SYMBOLS,
      poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
    });
  } catch (e) {
    if (e instanceof D.errors.NotCapable || e instanceof D.errors.PermissionDenied) {
      throw new Error(
        "Deno may not call libc, which the launcher opens its sockets with: run it with --allow-ffi (or -A)",
      );
    }
    throw e;
  }
  const s = lib.symbols;
  return {
    sym: s,
    errno: () => new D.UnsafePointerView(s.__errno_location()).getInt32(0),
    async pollAsync(fds, timeoutMs) {
      const buf = pollfds(fds);
      await s.poll(buf, BigInt(fds.length), timeoutMs);
      return revents(buf, fds);
    },
  };
}

function bunFfi(): Ffi {
  const ffi = (process as Any).getBuiltinModule("bun:ffi");
  const map = (t: string) => (t === "buffer" || t === "pointer" ? "ptr" : t);
  const defs: Record<string, { args: string[]; returns: string }> = {};
  for (const [name, d] of Object.entries(SYMBOLS)) {
    defs[name] = { args: d.parameters.map(map), returns: map(d.result) };
  }
  const s = ffi.dlopen(LIBC, defs).symbols;
  const workers = new Map<number, Any>();
  let seq = 0;
  const waiting = new Map<number, (buf: Uint8Array) => void>();
  return {
    sym: s,
    errno: () => ffi.read.i32(s.__errno_location(), 0),
    pollAsync(fds, timeoutMs, lane = 0) {
      // A worker blocks in poll(2); bun:ffi calls block the calling thread.
      let worker = workers.get(lane);
      if (!worker) {
        const code = `
          const { dlopen } = require("bun:ffi");
          const { poll } = dlopen(${
          JSON.stringify(LIBC)
        }, { poll: { args: ["ptr", "u64", "i32"], returns: "i32" } }).symbols;
          self.onmessage = (e) => {
            const buf = new Uint8Array(e.data.buf);
            poll(buf, e.data.n, e.data.timeout);
            postMessage({ id: e.data.id, buf });
          };`;
        worker = new Worker(URL.createObjectURL(new Blob([code], { type: "application/javascript" })));
        worker.unref?.();
        workers.set(lane, worker);
        worker.onmessage = (e: { data: { id: number; buf: Uint8Array } }) => {
          const resolve = waiting.get(e.data.id);
          waiting.delete(e.data.id);
          resolve?.(e.data.buf);
        };
      }
      const id = ++seq;
      return new Promise((resolve) => {
        waiting.set(id, (buf) => resolve(revents(buf, fds)));
        worker.postMessage({ id, buf: pollfds(fds).buffer, n: fds.length, timeout: timeoutMs });
      });
    },
  };
}

/**
 * The socket calls of `open()` over Node 26's node:ffi, for the sockets Node's
 * own handles cannot open (unix datagram). `keys` are the definition keys this
 * Node reads (runtimes/node/ffi_libc.ts probes them). No pollAsync: Node's
 * launcher waits and accepts through libuv.
 */
export function nodeSocketOpener(
  ffi: { dlopen(path: string, defs: Record<string, unknown>): { functions: Record<string, unknown> } },
  [args, ret]: readonly [string, string],
): (s: ListenSpec) => number {
  const TYPE: Record<string, string> = { usize: "u64", isize: "i64" };
  const defs: Record<string, unknown> = {};
  for (const [name, d] of Object.entries(SYMBOLS)) {
    defs[name] = { [args]: d.parameters.map((t) => TYPE[t] ?? t), [ret]: TYPE[d.result] ?? d.result };
  }
  const sym = ffi.dlopen(LIBC, defs).functions as Ffi["sym"];
  const getInt32 = (ffi as unknown as { getInt32(p: bigint): number }).getInt32;
  const f: Ffi = {
    sym,
    errno: () => getInt32(sym.__errno_location()),
    pollAsync: () => Promise.reject(new Error("not on Node")),
  };
  return (s) => open(f, s, false);
}

function pollfds(fds: number[]): Uint8Array {
  const buf = new Uint8Array(8 * fds.length);
  const v = new DataView(buf.buffer);
  fds.forEach((fd, i) => {
    v.setInt32(8 * i, fd, true);
    v.setInt16(8 * i + 4, 1, /* POLLIN */ true);
  });
  return buf;
}

function revents(buf: Uint8Array, fds: number[]): number[] {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return fds.filter((_, i) => v.getInt16(8 * i + 6, true) !== 0);
}

function sockaddr(s: ListenSpec): Uint8Array {
  if (s.kind === "unix") {
    const path = new TextEncoder().encode(s.path);
    // A path gets its terminating NUL; an abstract name is exactly its bytes.
    const sa = new Uint8Array(2 + path.length + (path[0] === 0 ? 0 : 1));
    sa[0] = AF_UNIX;
    sa.set(path, 2);
    return sa;
  }
  if (s.family === "ipv4") {
    const sa = new Uint8Array(16);
    const v = new DataView(sa.buffer);
    v.setUint16(0, AF_INET, true);
    v.setUint16(2, s.port, false);
    sa.set(parseIPv4(s.host)!, 4);
    return sa;
  }
  const sa = new Uint8Array(28);
  const v = new DataView(sa.buffer);
  v.setUint16(0, AF_INET6, true);
  v.setUint16(2, s.port, false);
  sa.set(parseIPv6(s.host)!, 8);
  return sa;
}

function int(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, n, true);
  return b;
}

/** Opens one listening (or bound datagram) socket; the fd is close-on-exec. */
function open(f: Ffi, s: ListenSpec, nonblock: boolean): number {
  const { sym } = f;
  const domain = s.kind === "unix" ? AF_UNIX : s.family === "ipv4" ? AF_INET : AF_INET6;
  const type = (s.datagram ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0);
  const fail = () => listenError(s.text, describeSpec(s), errnoName(f.errno()));
  const fd = sym.socket(domain, type, 0);
  if (fd < 0) throw fail();
  try {
    if (s.kind === "ip" && !s.datagram) sym.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, int(1), 4);
    // PORT alone means both families, whatever net.ipv6.bindv6only says.
    if (s.kind === "ip" && s.dualStack) sym.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, int(0), 4);
    const sa = sockaddr(s);
    if (sym.bind(fd, sa, sa.length) !== 0) throw fail();
    if (!s.datagram && sym.listen(fd, 4096) !== 0) throw fail();
  } catch (e) {
    sym.close(fd);
    throw e;
  }
  return fd;
}

function peer(sa: Uint8Array, len: number): { remoteAddr?: string; remotePort?: number } {
  const v = new DataView(sa.buffer);
  const family = len >= 2 ? v.getUint16(0, true) : 0;
  if (family === AF_INET) {
    return { remoteAddr: Array.from(sa.subarray(4, 8)).join("."), remotePort: v.getUint16(2, false) };
  }
  if (family === AF_INET6) {
    const b = sa.subarray(8, 24);
    const mapped = b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
    const remoteAddr = mapped
      ? Array.from(b.subarray(12)).join(".")
      : Array.from({ length: 8 }, (_, i) => ((b[2 * i] << 8) | b[2 * i + 1]).toString(16)).join(":")
        .replace(/(^|:)0(:0)+(:|$)/, "::").replace(/:{3,}/, "::");
    return { remoteAddr, remotePort: v.getUint16(2, false) };
  }
  return {};
}

let notifySeq = 0;
const notifyFds = new Map<number, NotifyChannel>();

/**
 * Reads every NOTIFY_SOCKET while one is open, in one loop (its own poll lane,
 * so that no other wait queues behind it): a COMMAND whose notifications
 * nobody read would block in sendto(2) once the socket's queue is full.
 */
async function notifyHub(ffi: Ffi): Promise<void> {
  const buf = new Uint8Array(4096);
  while (notifyFds.size > 0) {
    const ready = await ffi.pollAsync([...notifyFds.keys()], 250, 1);
    for (const fd of ready) {
      for (;;) {
        const n = Number(ffi.sym.recv(fd, buf, BigInt(buf.length), MSG_DONTWAIT));
        if (n < 0) break;
        notifyFds.get(fd)?.onMessage?.(new TextDecoder().decode(buf.subarray(0, n)));
      }
    }
  }
}

/** The launcher for Deno or Bun. */
export function ffiLauncher(runtime: "deno" | "bun"): Launcher {
  const f = () => (loaded ??= runtime === "deno" ? denoFfi() : bunFfi());
  const ffi = f;
  const D = (globalThis as Any).Deno;
  const common = commonParts();
  return {
    ...common,
    sealInheritedFds() {
      // Bun's spawn closes every fd above the stdio array in the child; Deno
      // passes on whatever lacks FD_CLOEXEC (measured), so mark those.
      if (runtime === "bun") return;
      const { fcntl } = f().sym;
      for (const e of D.readDirSync("/proc/self/fd")) {
        const fd = Number(e.name);
        if (!(fd > 2)) continue;
        const flags = fcntl(fd, F_GETFD, 0);
        if (flags >= 0 && (flags & 1) === 0) fcntl(fd, F_SETFD, flags | 1);
      }
    },
    hold(specs) {
      const ffi = f();
      const held: HeldSocket[] = [];
      try {
        for (const s of specs) held.push({ fd: open(ffi, s, false), spec: s });
      } catch (e) {
        for (const h of held) ffi.sym.close(h.fd);
        return Promise.reject(e);
      }
      return Promise.resolve(held);
    },
    waitForTraffic(held) {
      // poll(2) leaves the connection (or datagram) where it is. In slices of
      // 250 ms, so that a cancelled wait leaves no poll behind for long.
      const ffi = f();
      const fds = held.map((h) => h.fd);
      let waiting = true;
      const ready = (async () => {
        while (waiting) {
          if ((await ffi.pollAsync(fds, 250)).length > 0) return;
        }
        await new Promise(() => {}); // cancelled: never
      })();
      return { ready, cancel: () => void (waiting = false) };
    },
    notifySocket() {
      const ffi = f();
      const name = `socket-activate-run/${process.pid}/${++notifySeq}`;
      const spec: ListenSpec = { text: `@${name}`, datagram: true, kind: "unix", path: "\0" + name };
      const fd = open(ffi, spec, true);
      const channel: NotifyChannel = {
        address: `@${name}`,
        onMessage: undefined,
        close: () => {
          notifyFds.delete(fd);
          ffi.sym.close(fd);
        },
      };
      notifyFds.set(fd, channel);
      if (notifyFds.size === 1) void notifyHub(ffi);
      return channel;
    },
    spawn(argv, env, fds, stdio) {
      if (runtime !== "deno") return common.spawn(argv, env, fds, stdio);
      if (stdio !== undefined) {
        // Deno's spawn dup()s a numeric stdin or stdout without close-on-exec
        // (the Fd stdio of denoland/deno#32959), and COMMAND got the copies
        // as fds 25 and 26 (measured, Deno 2.9): hand the connection over as
        // fd 3, and let sh make it stdin and stdout. exec keeps the PID.
        const inetd = ["/bin/sh", "-c", 'exec 0<&3 1>&3 3>&-; exec "$0" "$@"', ...argv];
        return this.spawn(inetd, env, [stdio]);
      }
      // Deno's spawn clears O_NONBLOCK on every fd it hands a child (denoland/
      // deno#34962), and the flag belongs to the socket, which a running
      // COMMAND shares (a reload, workers): its accept(2) would then block its
      // event loop until the next connection. Put the flag back after the
      // spawn, and bound an accept that blocks meanwhile with SO_RCVTIMEO
      // (1 ms: it returns EAGAIN, as on a nonblocking socket).
      const was = fds.map((fd) => ffi().sym.fcntl(fd, F_GETFL, 0));
      const tv = new Uint8Array(16);
      new DataView(tv.buffer).setBigInt64(8, 1000n, true);
      fds.forEach((fd, i) => {
        if (was[i] & O_NONBLOCK) ffi().sym.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, 16);
      });
      try {
        return common.spawn(argv, env, fds, stdio);
      } finally {
        fds.forEach((fd, i) => {
          if (!(was[i] & O_NONBLOCK)) return;
          ffi().sym.fcntl(fd, F_SETFL, ffi().sym.fcntl(fd, F_GETFL, 0) | O_NONBLOCK);
          ffi().sym.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, new Uint8Array(16), 16);
        });
      }
    },
    serve(specs, onConnection) {
      const ffi = f();
      const fds: number[] = [];
      try {
        for (const s of specs) fds.push(open(ffi, s, true));
      } catch (e) {
        for (const fd of fds) ffi.sym.close(fd);
        return Promise.reject(e);
      }
      let open_ = true;
      (async () => {
        while (open_) {
          const ready = await ffi.pollAsync(fds, -1);
          for (const fd of ready) {
            const idx = fds.indexOf(fd);
            for (;;) {
              const sa = new Uint8Array(128);
              const len = int(sa.length);
              const c = ffi.sym.accept4(fd, sa, len, SOCK_CLOEXEC);
              if (c < 0) break; // EAGAIN: taken; anything else: poll says again
              const addr = specs[idx].kind === "ip"
                ? peer(sa, new DataView(len.buffer).getInt32(0, true))
                : {};
              const conn: Accepted = { fd: c, ...addr, close: () => void ffi.sym.close(c) };
              onConnection(conn);
            }
          }
        }
      })();
      return Promise.resolve(() => {
        open_ = false;
        for (const fd of fds) ffi.sym.close(fd);
      });
    },
    watch(paths, onChange) {
      if (runtime !== "deno") return common.watch(paths, onChange);
      // Deno's node:fs watch of a directory is recursive whatever the option
      // says, so a lone file's directory (a project's root, node_modules and
      // all) would be walked whole: Deno.watchFs says recursive: false. A
      // directory: recursive (inotify on each directory, which sees a save by
      // rename); a lone file: its directory, for that name alone.
      const watchers = paths.map((p) => {
        const dir = D.statSync(p).isDirectory;
        const slash = p.lastIndexOf("/");
        const parent = dir ? p : slash < 0 ? "." : slash === 0 ? "/" : p.slice(0, slash);
        const only = dir ? undefined : `${D.realPathSync(parent)}/${p.slice(slash + 1)}`;
        const w = D.watchFs(parent, { recursive: dir });
        (async () => {
          try {
            for await (const e of w) {
              // "access": a read (COMMAND loading its sources) or a close after the write seen.
              if (e.kind === "access") continue;
              const hit = only === undefined ? e.paths[0] : e.paths.find((x: string) => x === only);
              if (hit !== undefined) onChange(only === undefined ? hit : p);
            }
          } catch { /* closed */ }
        })();
        return w;
      });
      return () => watchers.forEach((w) => w.close());
    },
    onSignal(signal, fn) {
      if (runtime === "deno") {
        D.addSignalListener(signal, fn);
        return () => D.removeSignalListener(signal, fn);
      }
      process.on(signal, fn);
      return () => process.off(signal, fn);
    },
  };
}

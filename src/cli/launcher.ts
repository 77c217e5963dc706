// What `socket-activate run` needs of a runtime, beyond the Runtime contract:
// sockets that listen without the launcher ever accepting on them, children
// that get exactly those fds as 3, 4, ..., and a way to hand each accepted
// connection to its own child. runtimes/node/launcher.ts (Node) and
// runtimes/ffi/launcher.ts (Deno, Bun) implement it; src/cli/run.ts drives it. The
// address helpers live here, not in src/cli/run.ts, so that the runtimes' half
// does not pull the CLI's half into the npm bin (src/cli/run.ts is built apart).

/** One `-l ADDR`, parsed. `host` is an IP literal; `path` starts with NUL for an abstract name. */
export type ListenSpec =
  & { text: string; datagram: boolean }
  & (
    | { kind: "ip"; family: "ipv4" | "ipv6"; host: string; port: number; dualStack: boolean }
    | { kind: "unix"; path: string }
  );

/** A socket the launcher holds open for its children. */
export interface HeldSocket {
  fd: number;
  spec: ListenSpec;
}

/** How a child ended: an exit code, or the signal that killed it. */
export interface ChildExit {
  code: number | null;
  signal: string | null;
}

/** A started COMMAND. */
export interface ChildProc {
  pid: number;
  exited: Promise<ChildExit>;
}

/** A connection the launcher accepted (accept mode). */
export interface Accepted {
  fd: number;
  /** The peer's address for REMOTE_ADDR (IP sockets only). */
  remoteAddr?: string;
  remotePort?: number;
  /** Closes the launcher's copy, once a child has its own. */
  close(): void;
}

/** A unix datagram socket that receives sd_notify messages. */
export interface NotifyChannel {
  /** NOTIFY_SOCKET's value: an @abstract name. */
  address: string;
  /** Called with the text of each datagram. */
  onMessage: ((text: string) => void) | undefined;
  close(): void;
}

/** The launcher's runtime-specific half. */
export interface Launcher {
  /**
   * Closes (or marks close-on-exec) every fd above 2 this process inherited
   * without FD_CLOEXEC, so COMMAND gets nothing of the launcher's but the
   * sockets, as systemd-socket-activate's close_all_fds() does.
   */
  sealInheritedFds(): void;
  /**
   * Binds and listens on every spec, in order, such that nothing in this
   * process ever accepts on them: connections wait in the backlog for a child.
   * Throws an Error whose message names the address and the errno.
   */
  hold(specs: ListenSpec[]): Promise<HeldSocket[]>;
  /**
   * Accept mode: listens on `specs` and calls `onConnection` with each
   * accepted connection, which the callback must close after handing it on. Resolves once listening; returns a function that stops accepting.
   */
  serve(specs: ListenSpec[], onConnection: (conn: Accepted) => void): Promise<() => void>;
  /**
   * Start on demand: resolves `ready` once a connection or a datagram waits on
   * one of `held`, without taking it (it stays for COMMAND); `cancel` stops
   * waiting. A string instead says why this runtime cannot wait so (COMMAND
   * then starts at once).
   */
  waitForTraffic(held: HeldSocket[]): { ready: Promise<void>; cancel(): void } | string;
  /**
   * A NOTIFY_SOCKET of the launcher's own for one COMMAND, where the runtime
   * has unix datagram sockets (Deno, Bun); undefined where it has none (Node).
   */
  notifySocket?(): NotifyChannel | undefined;
  /**
   * Starts argv with exactly `fds` as 3, 4, ... and only `env` as its
   * environment; with `stdio`, that fd as its stdin and stdout (--inetd).
   */
  spawn(argv: string[], env: Record<string, string>, fds: number[], stdio?: number): ChildProc;
  kill(pid: number, signal: string): void;
  /** Calls `onChange` with a path whenever something under one of `paths` changes. */
  watch(paths: string[], onChange: (path: string) => void): () => void;
  onSignal(signal: "SIGHUP" | "SIGINT" | "SIGTERM" | "SIGUSR2", fn: () => void): () => void;
  /** The whole environment of the launcher. */
  environment(): Record<string, string>;
  /** Removes a unix socket file the launcher created, at exit. */
  unlink(path: string): void;
  /** Whether `path` exists and what it is. */
  lstat(path: string): "socket" | "dir" | "file" | "other" | undefined;
  /** Whether an executable file is at `path`. */
  isExecutable(path: string): boolean;
}

/** Four bytes of a dotted-quad IPv4 address, or undefined. */
export function parseIPv4(s: string): Uint8Array | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const b = m.slice(1).map(Number);
  return b.every((x) => x <= 255) ? Uint8Array.from(b) : undefined;
}

/** Sixteen bytes of an IPv6 address (with :: and a trailing dotted quad), or undefined. */
export function parseIPv6(s: string): Uint8Array | undefined {
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const groups = (part: string): number[] | undefined => {
    if (part === "") return [];
    const out: number[] = [];
    const items = part.split(":");
    for (let k = 0; k < items.length; k++) {
      const it = items[k];
      if (k === items.length - 1 && it.includes(".")) {
        const v4 = parseIPv4(it);
        if (!v4) return undefined;
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(it)) out.push(parseInt(it, 16));
      else return undefined;
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (!head || !tail) return undefined;
  const fill = 8 - head.length - tail.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) return undefined;
  const all = [...head, ...new Array(halves.length === 2 ? fill : 0).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  all.forEach((g, k) => {
    bytes[2 * k] = g >> 8;
    bytes[2 * k + 1] = g & 0xff;
  });
  return bytes;
}

/** How a person reads an address spec. */
export function describeSpec(s: ListenSpec): string {
  const what = s.datagram ? (s.kind === "ip" ? "udp" : "unix datagram") : (s.kind === "ip" ? "tcp" : "unix");
  if (s.kind === "unix") return `${what} ${s.path.startsWith("\0") ? "@" + s.path.slice(1) : s.path}`;
  return `${what} ${s.family === "ipv6" ? `[${s.host}]` : s.host}:${s.port}`;
}

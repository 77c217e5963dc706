// What `socket-activate run` needs of a runtime, beyond the Runtime contract:
// sockets that listen without the launcher ever accepting on them, children
// that get exactly those fds as 3, 4, ..., and a way to hand each accepted
// connection to its own child. runtimes/_run_node.ts (Node) and
// runtimes/_run_ffi.ts (Deno, Bun) implement it; src/run.ts drives it.

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
  /** Starts argv with exactly `fds` as 3, 4, ... and only `env` as its environment. */
  spawn(argv: string[], env: Record<string, string>, fds: number[]): ChildProc;
  kill(pid: number, signal: string): void;
  /** Calls `onChange` with a path whenever something under one of `paths` changes. */
  watch(paths: string[], onChange: (path: string) => void): () => void;
  onSignal(signal: "SIGHUP" | "SIGINT" | "SIGTERM", fn: () => void): () => void;
  /** The whole environment of the launcher. */
  environment(): Record<string, string>;
  /** Removes a unix socket file the launcher created, at exit. */
  unlink(path: string): void;
  /** Whether `path` exists and what it is. */
  lstat(path: string): "socket" | "dir" | "file" | "other" | undefined;
  /** Whether an executable file is at `path`. */
  isExecutable(path: string): boolean;
}

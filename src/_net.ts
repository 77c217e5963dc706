// The contract between src/listen.ts and each runtime's stream adapter
// (runtimes/node_api/net.ts, deno/net.ts, bun/net.ts). An adapter is loaded on
// the first listen(), never at import.

/**
 * A socket address, in the shape of `Deno.Addr`.
 *
 * @example Print where a server listens
 * ```ts
 * import { type Addr, listen } from "@socket-activate/socket-activate";
 *
 * const where = (a: Addr) => a.transport === "unix" ? a.path : `${a.hostname}:${a.port}`;
 * const server = await listen({ fallback: { port: 8080 } }, (conn) => {
 *   console.log(`connection from ${where(conn.remoteAddr)}`);
 *   conn.close();
 * });
 * console.log(`listening on ${where(server.addr)}`);
 * ```
 */
export type Addr =
  | { transport: "tcp"; hostname: string; port: number }
  | { transport: "udp"; hostname: string; port: number }
  | { transport: "unix"; path: string };

/** An address for a person: `127.0.0.1:80`, `[::1]:80`, a path. */
export function formatAddr(a: Addr): string {
  if (a.transport === "unix") return a.path || "unix";
  return a.hostname.includes(":") ? `[${a.hostname}]:${a.port}` : `${a.hostname}:${a.port}`;
}

/**
 * A runtime-neutral stream connection.
 *
 * @example Echo, then half-close
 * ```ts
 * import { type Conn, listen } from "@socket-activate/socket-activate";
 *
 * async function echo(conn: Conn): Promise<void> {
 *   for await (const chunk of conn) await conn.write(chunk);
 *   await conn.closeWrite();
 * }
 * await listen({ fallback: { port: 8080 } }, echo);
 * ```
 */
export interface Conn {
  /** Bytes from the peer; ends when the peer shuts down its side. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Bytes to the peer; closing it shuts down this side (half-close). */
  readonly writable: WritableStream<Uint8Array>;
  /** The peer's address (`path: ""` for an unnamed unix peer). */
  readonly remoteAddr: Addr;
  /** This end's address. */
  readonly localAddr: Addr;
  /**
   * Writes bytes; resolves once the socket has taken them (backpressure).
   * Lighter than `writable`, whose first use costs Node and Deno about 2 ms
   * of start-up (they load web streams lazily).
   */
  write(data: Uint8Array): Promise<void>;
  /** Shuts down this side (the peer reads end of stream); reading goes on. */
  closeWrite(): Promise<void>;
  /**
   * The received bytes, chunk by chunk, until the peer shuts down its side:
   * `for await (const chunk of conn)`. Lighter than `readable`; use one or
   * the other, not both. Leaving the loop early closes the connection.
   */
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array>;
  /** Closes the connection at once, both directions. */
  close(): void;
  /** Settles when the connection is fully closed. */
  readonly closed: Promise<void>;
}

/** A listener an adapter opened or adopted. */
export interface RawListener {
  /** Where the runtime says it listens, or undefined where it cannot say. */
  addr: Addr | undefined;
  /**
   * Whether the runtime's listening socket is the fd that was passed:
   * true or false where the adapter can tell, undefined where it cannot.
   */
  sameFd: boolean | undefined;
  /**
   * Stops accepting; open connections stay. A promise, where connections the
   * runtime accepted before the stop are still on their way to `onConn`,
   * settles once they have all been delivered.
   */
  close(): void | Promise<void>;
}

export type Target = { hostname: string; port: number } | { path: string };

export interface NetAdapter {
  /** Listens on an inherited listening socket (through `handle` where one was opened on it). */
  listenFd(fd: number, onConn: (conn: Conn) => void, handle?: unknown): Promise<RawListener>;
  /** Opens a listening socket of its own (the fallback). */
  listenAddr(target: Target, onConn: (conn: Conn) => void): Promise<RawListener>;
  /** Wraps an inherited connected socket (Accept=yes), through `handle` where one was opened on it. */
  connFd(fd: number, handle?: unknown): Promise<Conn>;
}

/** A datagram socket an adapter bound or adopted. */
export interface RawDgram {
  /** Where it is bound, as the runtime reports it. */
  addr: Addr | undefined;
  send(data: Uint8Array, to: Addr): Promise<void>;
  close(): void;
}

/** The datagram half of a runtime adapter. */
export interface DgramAdapter {
  /** Receives on an inherited UDP (ipv4, ipv6) or unix datagram socket. */
  bindFd(
    fd: number,
    family: "ipv4" | "ipv6" | "unix",
    onMessage: (data: Uint8Array, from: Addr) => void,
  ): Promise<RawDgram>;
  /** Binds a UDP socket of its own (the fallback). */
  bindAddr(
    target: { hostname: string; port: number },
    onMessage: (data: Uint8Array, from: Addr) => void,
  ): Promise<RawDgram>;
}

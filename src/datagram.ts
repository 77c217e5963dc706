import { ActivationError } from "./errors.ts";
import { type FdInfo, inspectWith } from "./inspect_fd.ts";
import { adoptFd, type Fallback, fallbackFailed, notPassedError, requireFallback } from "./listen.ts";
import type { Addr, RawDgram } from "./_net.ts";
import { getRuntime } from "./_runtime.ts";
import { checkSignals, guard } from "./_signals.ts";

/**
 * Options for {@linkcode listenDatagram}.
 *
 * @example The fd named dns, or UDP port 5353
 * ```ts
 * import { type DatagramOptions, listenDatagram } from "@socket-activate/socket-activate";
 *
 * const options: DatagramOptions = { name: "dns", fallback: { port: 5353 } };
 * await listenDatagram(options, (data) => console.log(`${data.length} bytes`));
 * ```
 */
export interface DatagramOptions {
  /** The fd to serve by its LISTEN_FDNAMES name. @default {the only fd passed} */
  name?: string;
  /** The fd to serve by position (0 is fd 3). @default {the only fd passed} */
  index?: number;
  /** Where to bind when not activated: a UDP port. @default {none: an error} */
  fallback?: Extract<Fallback, { port: number }>;
  /**
   * How long the stop on SIGTERM waits for handlers and sends in flight
   * before it closes the socket, in milliseconds.
   *
   * @default {10000}
   */
  drainTimeout?: number;
  /**
   * Stop on SIGTERM and SIGINT, as `listen()`'s option of the same name
   * says: the socket stays open until the handlers and sends in flight are
   * done (datagrams that come meanwhile are handled too), then closes, and
   * what is left waits in the socket for the next process. `false` leaves
   * the signals alone.
   *
   * @default {true}
   */
  signals?: boolean;
}

/**
 * Called with each datagram and its sender.
 *
 * @example Log each datagram's sender
 * ```ts
 * import { type DatagramHandler, listenDatagram } from "@socket-activate/socket-activate";
 *
 * const log: DatagramHandler = (data, remote) => {
 *   console.log(`${data.length} bytes from ${remote.transport === "udp" ? `${remote.hostname}:${remote.port}` : "unix"}`);
 * };
 * await listenDatagram({ fallback: { port: 9999 } }, log);
 * ```
 */
export type DatagramHandler = (data: Uint8Array, remote: Addr) => void | Promise<void>;

/**
 * A datagram server from {@linkcode listenDatagram}.
 *
 * @example Reply, then close
 * ```ts
 * import { type DatagramServer, listenDatagram } from "@socket-activate/socket-activate";
 *
 * let server: DatagramServer | undefined;
 * server = await listenDatagram({ fallback: { port: 9999 } }, async (data, remote) => {
 *   await server?.send(data, remote); // the same bytes back
 * });
 * console.log(`receiving on ${server.activated ? `fd ${server.fd}` : "port 9999"}`);
 * await server.close();
 * ```
 */
export interface DatagramServer {
  /** True when the socket came from the service manager. */
  readonly activated: boolean;
  /** Where it receives. */
  readonly addr: Addr;
  /** The inherited fd, when activated. */
  readonly fd: number | undefined;
  /** Its LISTEN_FDNAMES name, when activated. */
  readonly name: string | undefined;
  /**
   * Sends one datagram to `remote` (a sender's address from the handler,
   * say). Rejects with an error whose `code` is the errno: an
   * {@linkcode ActivationError} `ECONNREFUSED` when a unix sender has gone. A
   * handler that does not await it loses only that datagram, never the server.
   */
  send(data: Uint8Array, remote: Addr): Promise<void>;
  /** Stops receiving and closes the socket. */
  close(): Promise<void>;
  /** Settles when the server has closed. */
  readonly finished: Promise<void>;
}

function describe(fd: number, name: string, info: FdInfo): string {
  const where = info.address === undefined ? info.target ?? "" : formatWhere(info);
  return `fd ${fd} "${name}" is a ${[info.kind, info.type].filter(Boolean).join(" ")}${
    where ? ` (${where})` : ""
  }`;
}

function formatWhere(info: FdInfo): string {
  return info.port === undefined
    ? info.address || "(unnamed)"
    : `${info.family === "ipv6" ? `[${info.address}]` : info.address}:${info.port}`;
}

/**
 * Receives datagrams on the UDP socket the service manager passed
 * (`ListenDatagram=`), or on a port of its own when not activated, the same
 * under Node and Bun (`node:dgram` on the fd) and Deno (`recvfrom`/`sendto`
 * over FFI, since Deno's `node:dgram` refuses an fd: it needs `--allow-ffi`).
 *
 * @param options Which fd, and the fallback.
 * @param handler Called with each datagram and its sender.
 * @returns The server, once it receives.
 * @throws {ActivationError} As {@linkcode listen} does; `EPROTOTYPE` for an
 * fd that is not a UDP socket, `ENOTSUP` where the runtime cannot receive on it.
 *
 * @example A UDP echo
 * ```ts
 * import { listenDatagram } from "@socket-activate/socket-activate";
 *
 * const server = await listenDatagram({ fallback: { port: 9999 } }, (data, remote) => {
 *   server.send(data, remote);
 * });
 * ```
 */
export async function listenDatagram(
  options: DatagramOptions,
  handler: DatagramHandler,
): Promise<DatagramServer> {
  const rt = getRuntime();
  checkSignals(options.signals, "listenDatagram() options");
  let resolveFinished!: () => void;
  const finished = new Promise<void>((r) => (resolveFinished = r));
  // Handlers and sends not yet settled, for the drain: a reply in flight
  // must go out before the socket closes.
  let pending = 0;
  let idle: (() => void) | undefined;
  const track = <T>(p: Promise<T>): Promise<T> => {
    pending++;
    const done = () => {
      if (--pending === 0) idle?.();
    };
    p.then(done, done);
    return p;
  };
  const deliver = (data: Uint8Array, from: Addr) => {
    try {
      const r = handler(data, from);
      if (r && typeof (r as Promise<void>).then === "function") {
        track(r as Promise<void>).catch((e) =>
          rt.write("stderr", `socket-activate: datagram handler failed: ${e}\n`)
        );
      }
    } catch (e) {
      rt.write("stderr", `socket-activate: datagram handler failed: ${(e as Error)?.stack ?? e}\n`);
    }
  };
  // A datagram already waiting when the socket is taken (the one that made
  // the service manager start the service) can be received before the caller
  // holds the server it answers through (`const server = await
  // listenDatagram(...)`; Deno's FFI receive resolves that early): datagrams
  // wait here until a macrotask after the server was handed over.
  let early: [Uint8Array, Addr][] | undefined = [];
  const onMessage = (data: Uint8Array, from: Addr) => {
    if (early) early.push([data, from]);
    else deliver(data, from);
  };
  const handOver = (server: DatagramServer): DatagramServer => {
    setImmediate(() => {
      const q = early!;
      early = undefined;
      for (const [data, from] of q) deliver(data, from);
    });
    return server;
  };
  const make = (
    raw: RawDgram,
    addr: Addr,
    activated: boolean,
    fd?: number,
    name?: string,
  ): DatagramServer => {
    let closed = false;
    let unguard = () => {};
    const close = () => {
      if (!closed) {
        closed = true;
        unguard();
        raw.close();
        resolveFinished();
      }
      return finished;
    };
    const drainTimeout = options.drainTimeout ?? 10_000;
    let draining: Promise<void> | undefined;
    const drain = () =>
      draining ??= new Promise<void>((resolve) => {
        const end = () => {
          clearTimeout(timer);
          idle = undefined;
          close().then(resolve);
        };
        const timer = setTimeout(end, drainTimeout);
        idle = end;
        if (pending === 0) end();
      });
    unguard = guard({ busy: () => pending, close: drain, drainTimeout }, options.signals);
    return handOver({
      activated,
      addr,
      fd,
      name,
      send: (data, remote) => {
        const sent = track(raw.send(data, remote)).catch((e) => {
          // Other failures keep the runtime's own error, with its errno `code`.
          if ((e as { code?: unknown })?.code !== "ECONNREFUSED") throw e;
          const where = remote.transport === "unix"
            ? `"${remote.path}"`
            : `${remote.hostname}:${remote.port}`;
          throw new ActivationError(
            "ECONNREFUSED",
            `Cannot send a datagram to ${where}: nothing receives there (the sender has gone)`,
          );
        });
        // A reply to a sender that has gone is not the server's failure: a
        // handler that does not await it must not crash the process with an
        // unhandled rejection. One that awaits it gets the error.
        sent.catch(() => {});
        return sent;
      },
      close,
      finished,
    });
  };
  const f = adoptFd(rt, options);
  const dgram = await rt.dgram();
  if (f === undefined) {
    requireFallback(options.fallback);
    const target = { hostname: options.fallback.hostname ?? "0.0.0.0", port: options.fallback.port };
    let raw: RawDgram;
    try {
      raw = await dgram.bindAddr(target, onMessage);
    } catch (e) {
      throw fallbackFailed(target, e);
    }
    return make(raw, raw.addr ?? { transport: "udp", ...target }, false);
  }
  let info = inspectWith(rt, f.fd, true);
  const unixDgram = info.kind === "unix" && info.type === "dgram";
  if (info.kind !== "udp" && !unixDgram) {
    info = inspectWith(rt, f.fd); // the whole story for the error, TCP tables included
    const hint =
      "listenDatagram() serves UDP and unix datagram sockets (ListenDatagram= in the .socket unit); " +
      "use listen() for streams";
    throw notPassedError(f, info) ??
      new ActivationError("EPROTOTYPE", `${describe(f.fd, f.name, info)}: ${hint}`);
  }
  let raw: RawDgram;
  try {
    raw = await dgram.bindFd(f.fd, unixDgram ? "unix" : info.family === "ipv6" ? "ipv6" : "ipv4", onMessage);
  } catch (e) {
    if (e instanceof ActivationError) {
      throw new ActivationError(e.code, `${describe(f.fd, f.name, info)}: ${e.message}`);
    }
    throw e;
  }
  // The fd's own address from inspectFd: node:dgram on an fd and FFI report nothing better.
  const addr: Addr = unixDgram
    ? { transport: "unix", path: info.address ?? "" }
    : { transport: "udp", hostname: info.address ?? "", port: info.port ?? 0 };
  if (raw.addr?.transport === "udp" && addr.transport === "udp" && raw.addr.port !== addr.port) {
    raw.close();
    throw new ActivationError(
      "EADDRNOTAVAIL",
      `The runtime was handed ${
        describe(f.fd, f.name, info)
      } but receives on port ${raw.addr.port}: it ignored the fd`,
    );
  }
  return make(raw, addr, true, f.fd, f.name);
}

// The node:net flavour (socket-activate/node, /deno): a node:net server of
// the caller's own (net.Server, http.Server, https.Server, the server behind
// Express, Koa or Fastify) put on the activated socket or the fallback.
import type * as Net from "node:net";
import { ActivationError } from "../../src/errors.ts";
import {
  adopt,
  type Fallback,
  fallbackFailed,
  fallbackTarget,
  listenFailed,
  requireFallback,
  verifyListener,
} from "../../src/listen.ts";
import type { Addr } from "../../src/_net.ts";
import { getRuntime } from "../../src/_runtime.ts";

/**
 * Options for {@linkcode listenServer}.
 *
 * @example A net.Server on the fd named admin
 * ```ts
 * import { createServer } from "node:net";
 * import { listenServer, type ServerListenOptions } from "@socket-activate/socket-activate/node";
 *
 * const options: ServerListenOptions = { name: "admin", fallback: { path: "/tmp/admin.sock" } };
 * await listenServer(createServer((socket) => socket.end("hello\n")), options);
 * ```
 */
export interface ServerListenOptions {
  /** The fd to serve by its LISTEN_FDNAMES name. @default {the only fd passed} */
  name?: string;
  /** The fd to serve by position (0 is fd 3). @default {the only fd passed} */
  index?: number;
  /** Where to listen when not activated. @default {none: an error} */
  fallback?: Fallback;
}

/**
 * Where a server listens, and whether the socket came from the service manager.
 *
 * @example Say where the server is
 * ```ts
 * import { createServer } from "node:net";
 * import { listenServer, type ServerListening } from "@socket-activate/socket-activate/node";
 *
 * const at: ServerListening = await listenServer(createServer(), { fallback: { port: 8080 } });
 * console.error(at.activated ? `activated fd ${at.fd} "${at.name}"` : `port 8080 (${at.addr.transport})`);
 * ```
 */
export interface ServerListening {
  /** True when the socket came from the service manager. */
  activated: boolean;
  /** The inherited fd, when activated. */
  fd: number | undefined;
  /** Its LISTEN_FDNAMES name, when activated. */
  name: string | undefined;
  /** Where the server listens. */
  addr: Addr;
}

function listening(server: Net.Server, target: unknown): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    (server.listen as (t: unknown, cb: () => void) => void)(target, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

function addrOf(server: Net.Server): Addr | undefined {
  const a = server.address();
  if (a !== null && typeof a === "object" && "port" in a) {
    return { transport: "tcp", hostname: a.address, port: a.port };
  }
  return typeof a === "string" ? { transport: "unix", path: a } : undefined;
}

/**
 * Makes a node:net server listen on the socket the service manager passed,
 * or on `fallback` when the process was not activated, with the same checks
 * as {@linkcode listen}: the fd must be a listening stream socket, and a
 * server that ends up listening anywhere but on the fd is closed and an error
 * thrown (Bun's `http.Server` ignores `{ fd }` and binds a random port:
 * oven-sh/bun#22559). An Accept=yes connection is handed to the server as a
 * `connection` event.
 *
 * @param server The server to put on the socket.
 * @param options Which fd, and the fallback.
 * @returns Where it listens.
 * @throws {ActivationError} As {@linkcode listen} does.
 *
 * @example An http server, activated or on port 8080
 * ```ts
 * import { createServer } from "node:http";
 * import { listenServer } from "@socket-activate/socket-activate/node";
 *
 * const server = createServer((_req, res) => res.end("hello\n"));
 * const { activated } = await listenServer(server, { fallback: { port: 8080 } });
 * console.error(`activated: ${activated}`);
 * ```
 */
export async function listenServer(
  server: Net.Server,
  options: ServerListenOptions = {},
): Promise<ServerListening> {
  const rt = getRuntime();
  const a = adopt(rt, options);
  if (a === undefined) {
    requireFallback(options.fallback);
    const fb = options.fallback;
    const target = "path" in fb
      ? { path: fb.path.startsWith("@") ? "\0" + fb.path.slice(1) : fb.path }
      : { port: fb.port, host: fb.hostname ?? "0.0.0.0" };
    try {
      await listening(server, target);
    } catch (e) {
      throw fallbackFailed(fallbackTarget(fb), e);
    }
    const addr = addrOf(server) ?? ("path" in fb ? { transport: "unix", path: fb.path } as const : undefined);
    if (addr === undefined) {
      throw new ActivationError("EADDRNOTAVAIL", "The server listens, but not where it was asked to");
    }
    return { activated: false, fd: undefined, name: undefined, addr };
  }
  const net = process.getBuiltinModule("node:net") as typeof Net;
  if (a.mode === "connection") {
    const socket = a.handle === undefined
      ? new net.Socket({ fd: a.f.fd, readable: true, writable: true })
      : new net.Socket({ handle: a.handle } as unknown as Net.SocketConstructorOpts);
    server.emit("connection", socket);
    const remote = {
      transport: "tcp",
      hostname: socket.localAddress ?? "",
      port: socket.localPort ?? 0,
    } as const;
    return { activated: true, fd: a.f.fd, name: a.f.name, addr: remote };
  }
  try {
    await listening(server, a.handle ?? { fd: a.f.fd });
  } catch (e) {
    throw listenFailed(rt, a, e);
  }
  const handleFd = (server as unknown as { _handle?: { fd?: number } })._handle?.fd;
  const addr = verifyListener(
    a,
    {
      addr: addrOf(server),
      sameFd: typeof handleFd !== "number" || handleFd < 0 ? undefined : handleFd === a.f.fd,
      close: () => void server.close(),
    },
    // Bun's net.Server takes the fd; its http.Server ignores it and binds a
    // port of its own (oven-sh/bun#22559), a limitation, not a bug to report.
    rt.name === "bun"
      ? (handed, where) =>
        `Bun's http.Server ignores { fd } (oven-sh/bun#22559): handed ${handed}, it listened on ${where} ` +
        "instead. That listener was closed and nothing was served: serve an http.Server in Bun with " +
        "listenHttp(server) (or a fetch handler with serve()), which reach the fd"
      : undefined,
  );
  return { activated: true, fd: a.f.fd, name: a.f.name, addr };
}

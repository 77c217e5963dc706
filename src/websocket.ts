import type { Upgrader } from "./_ws.ts";

// src/_ws.ts's UPGRADE, spelled out: importing it would split that file (which
// the lazily loaded upgrade code shares) into a chunk of its own, one more
// file to load at every import of the package.
const UPGRADE = Symbol.for("socket-activate.upgrade");

/**
 * One side of an open WebSocket, the same in Node, Deno and Bun.
 *
 * @example Echo, and say goodbye after ten messages
 * ```ts
 * import { serve, type ServerWebSocket, upgradeWebSocket } from "@socket-activate/socket-activate";
 *
 * let count = 0;
 * const echo = (data: string | Uint8Array, ws: ServerWebSocket) => {
 *   ws.send(data);
 *   if (++count === 10) ws.close(1000, "that is enough");
 * };
 * await serve({ fallback: { port: 8080 } }, (request) => upgradeWebSocket(request, { onMessage: echo }));
 * ```
 */
export interface ServerWebSocket {
  /** Sends a text (a string) or a binary message. Dropped once the socket is closing or closed, as browsers do. */
  send(data: string | ArrayBuffer | ArrayBufferView): void;
  /** Starts the closing handshake with a code (1000 by default, or 3000-4999) and a reason. */
  close(code?: number, reason?: string): void;
  /** 0 connecting, 1 open, 2 closing, 3 closed (the WebSocket constants). */
  readonly readyState: 0 | 1 | 2 | 3;
  /** The subprotocol agreed on in the handshake, "" for none. */
  readonly protocol: string;
  /** Bytes given to send() and not yet handed to the operating system. */
  readonly bufferedAmount: number;
}

/**
 * What happens on a WebSocket: each callback optional.
 *
 * @example A chat room: every message to every open socket
 * ```ts
 * import { serve, type ServerWebSocket, upgradeWebSocket, type WebSocketHandlers } from "@socket-activate/socket-activate";
 *
 * const room = new Set<ServerWebSocket>();
 * const handlers: WebSocketHandlers = {
 *   onOpen: (ws) => room.add(ws),
 *   onMessage: (data) => room.forEach((ws) => ws.send(data)),
 *   onClose: (_code, _reason, ws) => room.delete(ws),
 * };
 * await serve({ fallback: { port: 8080 } }, (request) => upgradeWebSocket(request, handlers));
 * ```
 */
export interface WebSocketHandlers {
  /** The handshake is done; the socket can send. */
  onOpen?(ws: ServerWebSocket): void;
  /** A whole message: a string for a text message, bytes for a binary one. */
  onMessage?(data: string | Uint8Array, ws: ServerWebSocket): void;
  /**
   * The socket closed: the peer's close code and reason, 1005 for a close
   * without a code, 1006 when the connection ended without a close (a
   * client that vanished, found by the heartbeat).
   */
  onClose?(code: number, reason: string, ws: ServerWebSocket): void;
  /** A protocol error of the peer's (the socket is then closed with 1002, 1007 or 1009) or a socket error. */
  onError?(error: Error, ws: ServerWebSocket): void;
}

/**
 * Options for {@linkcode upgradeWebSocket}.
 *
 * @example A subprotocol, small messages, a ping every 10 s
 * ```ts
 * import { serve, upgradeWebSocket, type UpgradeWebSocketOptions } from "@socket-activate/socket-activate";
 *
 * const options: UpgradeWebSocketOptions = { protocol: "chat.v1", maxPayload: 64 * 1024, heartbeat: 10_000 };
 * await serve({ fallback: { port: 8080 } }, (request) => upgradeWebSocket(request, {}, options));
 * ```
 */
export interface UpgradeWebSocketOptions {
  /**
   * The subprotocol(s) this server speaks, in its order of preference: the first the client also
   * offers being agreed on; or a function picking one of those offered.
   *
   * @default {none}
   */
  protocol?: string | string[] | ((offered: string[]) => string | undefined);
  /**
   * The largest message in bytes; a larger one closes the socket with 1009
   * (message too big).
   *
   * @default {16777216 (16 MiB, as in Bun.serve)}
   */
  maxPayload?: number;
  /**
   * Milliseconds between pings; a socket that answered nothing since the
   * last one is closed (onClose with 1006). 0 for none.
   *
   * @default {30000}
   */
  heartbeat?: number;
}

/**
 * Upgrades a request that {@linkcode serve} is serving to a WebSocket, in
 * Node, Deno and Bun alike: returns the response for the handler to return,
 * and calls `handlers` as the socket opens, receives and closes. A request
 * that is not a valid handshake (no `Upgrade: websocket`, a version other
 * than 13, a bad `Sec-WebSocket-Key`) gets the 426 or 400 response instead,
 * and the server goes on serving. Node, where no WebSocket server is built
 * in, uses the package's own RFC 6455 framing (loaded on the first upgrade);
 * Bun uses Bun.serve's WebSockets; Deno its own where serve() runs Deno's
 * server, the package's framing on the node:http path. When the server
 * drains (`close()`, SIGTERM), open sockets are closed with 1001.
 *
 * @param request The request the serve() handler was given.
 * @param handlers What to do as the socket opens, receives and closes.
 * @param options Subprotocols, the message size limit, the heartbeat.
 * @returns The response for the handler to return.
 * @throws {TypeError} When `request` did not come from serve()'s handler.
 * @throws {RangeError} When `maxPayload` or `heartbeat` is not a number of bytes or milliseconds.
 *
 * @example An echo server, activated or on port 8080
 * ```ts
 * import { serve, upgradeWebSocket } from "@socket-activate/socket-activate";
 *
 * await serve({ fallback: { port: 8080 } }, (request) =>
 *   new URL(request.url).pathname === "/ws"
 *     ? upgradeWebSocket(request, { onMessage: (data, ws) => ws.send(data) })
 *     : new Response("connect to /ws\n"));
 * ```
 */
export function upgradeWebSocket(
  request: Request,
  handlers: WebSocketHandlers = {},
  options: UpgradeWebSocketOptions = {},
): Response {
  const up = (request as unknown as Record<symbol, Upgrader | undefined>)?.[UPGRADE];
  if (typeof up !== "function") {
    // A plain request (serve()'s node:http path routes only those with an
    // Upgrade header to the upgrade): what a server without it answers.
    if (request instanceof Request && !/websocket/i.test(request.headers.get("upgrade") ?? "")) {
      return new Response("Upgrade Required: this resource speaks WebSocket (Upgrade: websocket)\n", {
        status: 426,
        headers: { "content-type": "text/plain;charset=utf-8", upgrade: "websocket" },
      });
    }
    throw new TypeError(
      "Cannot upgrade this request to a WebSocket: give upgradeWebSocket() the request a serve() handler was given " +
        "(not a copy made with new Request(), and not one from a server other than serve())",
    );
  }
  return up(request, handlers ?? {}, options ?? {});
}

// What every runtime's WebSocket upgrade shares: the key a serve() path puts
// on each upgrade request it serves, the handshake checks of RFC 6455 §4.2.1,
// and the heartbeat. Runtime-neutral: the framing for Node is
// runtimes/node_api/ws.ts, Bun's and Deno's own servers frame natively.
import type { UpgradeWebSocketOptions, WebSocketHandlers } from "./websocket.ts";

/**
 * The property (a registered symbol, so that it is the same in every chunk
 * of the build and every copy of the package) under which a serve() path
 * puts the function that upgrades that request.
 */
export const UPGRADE: unique symbol = Symbol.for("socket-activate.upgrade") as never;

/**
 * What a serve() path does with upgradeWebSocket()'s arguments: the Response
 * for the handler to return. One function per server, put on every request
 * it serves (a property set costs a request next to nothing; reading the
 * Upgrade header of each would cost Bun a Headers object).
 */
export type Upgrader = (
  request: Request,
  handlers: WebSocketHandlers,
  options: UpgradeWebSocketOptions,
) => Response;

/** The property of a node:http server under which its open WebSockets are closed (the drain). */
export const CLOSE_ALL: unique symbol = Symbol.for("socket-activate.websockets.close") as never;

/** The largest message by default: Bun.serve's 16 MiB. */
export const DEFAULT_MAX_PAYLOAD = 16 * 1024 * 1024;

/** Pings every 30 s by default: a client gone without a close is freed within a minute. */
export const DEFAULT_HEARTBEAT = 30_000;

/** The close code and reason of a drain (RFC 6455 §7.4.1: 1001, going away). */
export const GOING_AWAY = 1001;
export const GOING_AWAY_REASON = "server shutting down";

/** Why a request cannot be upgraded (the response to give it), or undefined when it can. */
export function handshakeRefusal(headers: Headers, method: string): Response | undefined {
  const upgrade = headers.get("upgrade");
  if (upgrade === null || !/(^|,)\s*websocket\s*(,|$)/i.test(upgrade)) {
    // No `Connection: Upgrade` with it (RFC 9110 §15.5.22 asks for one): Deno's node:http then keeps a
    // connection whose request said `close` open until its keep-alive timeout.
    return plain(426, "Upgrade Required: this resource speaks WebSocket (Upgrade: websocket)", {
      upgrade: "websocket",
    });
  }
  if (method !== "GET") return plain(400, "Bad Request: a WebSocket handshake is a GET");
  const connection = headers.get("connection");
  if (connection === null || !/(^|,)\s*upgrade\s*(,|$)/i.test(connection)) {
    return plain(400, "Bad Request: a WebSocket handshake says Connection: Upgrade");
  }
  const version = headers.get("sec-websocket-version");
  if (version !== "13") {
    return plain(426, "Upgrade Required: Sec-WebSocket-Version 13", { "sec-websocket-version": "13" });
  }
  const key = headers.get("sec-websocket-key");
  if (key === null || !validKey(key.trim())) {
    return plain(400, "Bad Request: Sec-WebSocket-Key is not 16 bytes in base64");
  }
  return undefined;
}

function validKey(key: string): boolean {
  return key.length === 24 && /^[A-Za-z0-9+/]{22}==$/.test(key);
}

function plain(status: number, text: string, headers: Record<string, string> = {}): Response {
  return new Response(text + "\n", {
    status,
    headers: { "content-type": "text/plain;charset=utf-8", ...headers },
  });
}

/** The subprotocol to answer with, or undefined for none. */
export function pickProtocol(headers: Headers, options: UpgradeWebSocketOptions): string | undefined {
  const offered = (headers.get("sec-websocket-protocol") ?? "").split(",").map((s) => s.trim()).filter(
    Boolean,
  );
  const p = options.protocol;
  if (p === undefined || offered.length === 0) return undefined;
  if (typeof p === "function") {
    const chosen = p(offered);
    return chosen !== undefined && offered.includes(chosen) ? chosen : undefined;
  }
  const wanted = Array.isArray(p) ? p : [p];
  return wanted.find((w) => offered.includes(w));
}

/** Checks upgradeWebSocket()'s options, throwing for a value that cannot mean anything. */
export function checkOptions(options: UpgradeWebSocketOptions): { maxPayload: number; heartbeat: number } {
  const maxPayload = options.maxPayload ?? DEFAULT_MAX_PAYLOAD;
  if (typeof maxPayload !== "number" || !(maxPayload >= 0) || !Number.isInteger(maxPayload)) {
    throw new RangeError(
      `Cannot take WebSocket messages of up to maxPayload = ${String(maxPayload)} bytes: give a whole number`,
    );
  }
  const heartbeat = options.heartbeat ?? DEFAULT_HEARTBEAT;
  if (typeof heartbeat !== "number" || !(heartbeat >= 0) || !Number.isFinite(heartbeat)) {
    throw new RangeError(
      `Cannot ping every heartbeat = ${String(heartbeat)} ms: give a number of milliseconds, 0 for none`,
    );
  }
  return { maxPayload, heartbeat };
}

/**
 * A heartbeat: every `ms`, a socket that sent nothing since the last ping
 * (not even the pong) is given up on (`dead`), else pinged again.
 */
export function heartbeat(ms: number, ping: () => void, dead: () => void): { seen(): void; stop(): void } {
  if (ms === 0) return { seen() {}, stop() {} };
  let alive = true;
  const t = setInterval(() => {
    if (!alive) {
      clearInterval(t);
      return dead();
    }
    alive = false;
    ping();
  }, ms);
  (t as { unref?: () => void }).unref?.();
  return {
    seen() {
      alive = true;
    },
    stop() {
      clearInterval(t);
    },
  };
}

/** A close code a peer may send (RFC 6455 §7.4, 1004-1006 and 1015 never on the wire). */
export function validCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
    (code >= 3000 && code <= 4999);
}

/** close()'s arguments checked as WebSocket.close() checks them; the reason as UTF-8. */
export function closeReason(code: number, reason: string): Uint8Array {
  if (!validCode(code)) {
    throw new RangeError(
      `Cannot close a WebSocket with code ${code}: give 1000, 1001, 1008, 1011 or 3000-4999`,
    );
  }
  const r = new TextEncoder().encode(String(reason));
  if (r.length > 123) {
    throw new RangeError(`Cannot close a WebSocket with a reason of ${r.length} bytes: 123 at most`);
  }
  return r;
}

/** send()'s refusal of what is neither text nor bytes. */
export function notSendable(data: unknown): TypeError {
  return new TypeError(`Cannot send ${typeof data} over a WebSocket: give a string, an ArrayBuffer or bytes`);
}

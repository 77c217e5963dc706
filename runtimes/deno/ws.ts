// WebSockets on serve()'s fast path in Deno: Deno's own (Deno.upgradeWebSocket
// on the request Deno's server gave), for upgradeWebSocket() and for the
// caller's own Deno.upgradeWebSocket(request). runtimes/deno/http_fast.ts
// serves each connection with a server of its own, which Deno shuts down as
// soon as the connection's HTTP ends, closing the WebSockets upgraded on it
// (denoland/deno#35105): the upgrade takes that server out of Deno's
// resource table first (keep()), so that its shutdown finds nothing to close.
import type { ServerWebSocket, UpgradeWebSocketOptions, WebSocketHandlers } from "../../src/websocket.ts";
import {
  checkOptions,
  closeReason,
  GOING_AWAY,
  GOING_AWAY_REASON,
  handshakeRefusal,
  notSendable,
  pickProtocol,
  UPGRADE,
  type Upgrader,
} from "../../src/_ws.ts";

// deno-lint-ignore no-explicit-any
type Any = any;
type DenoUpgrade = (request: Request, options?: Any) => { response: Response; socket: WebSocket };

/** What the fast path does with a connection whose request became a WebSocket. */
export interface Upgraded {
  /** Keeps the WebSocket from the shutdown of the connection's server, and counts the connection until it closes. */
  keep(ws: WebSocket): void;
}

/** Deno's reason for a socket that answered no ping within its idleTimeout. */
const NO_PONG = "No response from ping frame.";

/** upgradeWebSocket()'s socket over Deno's own server WebSocket. */
class DenoSocket implements ServerWebSocket {
  readonly #ws: WebSocket;
  readonly protocol: string;
  constructor(ws: WebSocket, protocol: string, handlers: WebSocketHandlers, maxPayload: number) {
    this.#ws = ws;
    this.protocol = protocol;
    ws.binaryType = "arraybuffer";
    const call = (f: () => void) => {
      try {
        f();
      } catch (e) {
        console.error("socket-activate: a WebSocket handler failed:", e);
      }
    };
    ws.onopen = () => call(() => handlers.onOpen?.(this));
    ws.onmessage = (e: MessageEvent) => {
      const d = e.data;
      const m = typeof d === "string" ? d : new Uint8Array(d as ArrayBuffer);
      // Deno takes messages of any size: the limit is checked once one is whole.
      const n = typeof m === "string"
        ? (m.length * 3 <= maxPayload ? 0 : new TextEncoder().encode(m).length)
        : m.length;
      if (n > maxPayload) {
        call(() => handlers.onError?.(new Error(`a message larger than ${maxPayload} bytes`), this));
        ws.close(1009, "message too big");
        return;
      }
      call(() => handlers.onMessage?.(m, this));
    };
    ws.onerror = (e: Event) => {
      const message = (e as ErrorEvent).message;
      if (message === NO_PONG) return; // onClose says it, as 1006
      call(() => handlers.onError?.(new Error(message || "WebSocket error"), this));
    };
    ws.onclose = (e: CloseEvent) => {
      // A client gone without a close, found by Deno's ping (idleTimeout): 1006, as on the other paths.
      const code = !e.wasClean && e.reason === NO_PONG ? 1006 : e.code;
      call(() => handlers.onClose?.(code, code === 1006 ? "" : e.reason, this));
    };
  }
  get readyState(): 0 | 1 | 2 | 3 {
    return this.#ws.readyState as 0 | 1 | 2 | 3;
  }
  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }
  send(data: string | ArrayBuffer | ArrayBufferView): void {
    if (this.#ws.readyState !== 1) return;
    if (typeof data === "string" || data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
      this.#ws.send(data as string | ArrayBuffer);
      return;
    }
    throw notSendable(data);
  }
  close(code = 1000, reason = ""): void {
    closeReason(code, reason);
    if (this.#ws.readyState !== 1) return;
    this.#ws.close(code, String(reason));
  }
}

let original: DenoUpgrade | undefined;

/**
 * Deno.upgradeWebSocket, wrapped once: for a request of the fast path it
 * calls Deno's own, then keep()s the socket; any other request goes to
 * Deno's function as it came.
 */
function wrapDeno(): DenoUpgrade {
  if (original !== undefined) return original;
  const D = (globalThis as Any).Deno;
  const next: DenoUpgrade = original = D.upgradeWebSocket;
  D.upgradeWebSocket = function upgradeWebSocket(r: Request, options?: unknown) {
    const up = (r as Any)?.[UPGRADE]?.[OWNER] as Upgraded | undefined;
    const got = next.call(D, r, options);
    up?.keep(got.socket);
    return got;
  };
  return next;
}

/** The property of a connection's Upgrader under which its Upgraded is. */
const OWNER = Symbol("connection");

/**
 * The Upgrader that the fast path puts on each request of one connection:
 * upgradeWebSocket() through Deno's own upgrade. Also wraps
 * Deno.upgradeWebSocket (once a process) so that the caller's own upgrade
 * of that connection's requests is kept too.
 */
export function denoUpgrader(conn: Upgraded): Upgrader {
  const deno = wrapDeno();
  const up: Upgrader = (request, handlers: WebSocketHandlers, options: UpgradeWebSocketOptions) => {
    const no = handshakeRefusal(request.headers, request.method);
    if (no !== undefined) return no;
    const limits = checkOptions(options);
    const protocol = pickProtocol(request.headers, options);
    const got = deno.call((globalThis as Any).Deno, request, {
      protocol,
      // Deno pings after idleTimeout s without a frame and closes after as long again without a pong.
      idleTimeout: limits.heartbeat / 1000,
    });
    new DenoSocket(got.socket, protocol ?? "", handlers, limits.maxPayload);
    conn.keep(got.socket);
    return got.response;
  };
  (up as Any)[OWNER] = conn;
  return up;
}

/** The drain's close of a kept socket: 1001 (Deno checks the code of a client's close() only). */
export function goAway(ws: WebSocket): void {
  if (ws.readyState === 0) return void ws.addEventListener("open", () => goAway(ws));
  try {
    if (ws.readyState === 1) ws.close(GOING_AWAY, GOING_AWAY_REASON);
  } catch { /* closed */ }
}

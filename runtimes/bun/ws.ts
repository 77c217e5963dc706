// WebSockets on serve()'s fast path in Bun: Bun.serve's own (uWebSockets),
// for upgradeWebSocket() and for Bun's `websocket` handlers given to serve()
// with `info.upgrade(request)`, both on the one Bun.serve. A socket of
// upgradeWebSocket()'s carries a BunSocket as its `data`; any other is the
// caller's own and goes to the caller's handlers.
import type { ServeHandler } from "../../src/_http.ts";
import type { ServerWebSocket, UpgradeWebSocketOptions, WebSocketHandlers } from "../../src/websocket.ts";
import {
  checkOptions,
  closeReason,
  DEFAULT_MAX_PAYLOAD,
  GOING_AWAY,
  GOING_AWAY_REASON,
  handshakeRefusal,
  heartbeat,
  notSendable,
  pickProtocol,
  UPGRADE,
  type Upgrader,
} from "../../src/_ws.ts";

// deno-lint-ignore no-explicit-any
type Any = any;

/** upgradeWebSocket()'s socket over a Bun ServerWebSocket. */
class BunSocket implements ServerWebSocket {
  ws: Any;
  readonly protocol: string;
  readonly #h: WebSocketHandlers;
  readonly #max: number;
  readonly #every: number;
  #beat: { seen(): void; stop(): void } | undefined;
  constructor(
    handlers: WebSocketHandlers,
    limits: { maxPayload: number; heartbeat: number },
    protocol: string,
  ) {
    this.#h = handlers;
    this.#max = limits.maxPayload;
    this.#every = limits.heartbeat;
    this.protocol = protocol;
  }
  get readyState(): 0 | 1 | 2 | 3 {
    return (this.ws?.readyState ?? 0) as 0 | 1 | 2 | 3;
  }
  get bufferedAmount(): number {
    return this.ws?.getBufferedAmount?.() ?? 0;
  }
  send(data: string | ArrayBuffer | ArrayBufferView): void {
    if (this.readyState !== 1) return;
    if (typeof data === "string" || data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
      this.ws.send(data);
      return;
    }
    throw notSendable(data);
  }
  close(code = 1000, reason = ""): void {
    closeReason(code, reason);
    if (this.readyState !== 1) return;
    this.ws.close(code, String(reason));
  }
  call(f: () => void): void {
    try {
      f();
    } catch (e) {
      console.error("socket-activate: a WebSocket handler failed:", e);
    }
  }
  open(ws: Any): void {
    this.ws = ws;
    ws.binaryType = "uint8array";
    this.#beat = heartbeat(this.#every, () => ws.ping(), () => ws.terminate());
    this.call(() => this.#h.onOpen?.(this));
  }
  message(m: string | Uint8Array): void {
    this.#beat?.seen();
    const n = typeof m === "string" ? new TextEncoder().encode(m).length : m.byteLength;
    if (n > this.#max) {
      this.call(() => this.#h.onError?.(new Error(`a message larger than ${this.#max} bytes`), this));
      this.ws.close(1009, "message too big");
      return;
    }
    this.call(() => this.#h.onMessage?.(m, this));
  }
  seen(): void {
    this.#beat?.seen();
  }
  closed(code: number, reason: string): void {
    this.#beat?.stop();
    this.call(() => this.#h.onClose?.(code, reason ?? "", this));
  }
}

/** The websocket part of one Bun.serve: its config, the upgrade for requests, the drain. */
export function bunWebSockets(native: Record<string, Any> | undefined, server: () => Any) {
  const open = new Set<Any>();
  const upgraded = new WeakSet<Request>();
  const UPGRADED = new Response(null, { status: 200 }); // a mark, never sent
  const bunMax = (native?.maxPayloadLength as number | undefined) ?? DEFAULT_MAX_PAYLOAD;
  const ours = (ws: Any) => ws.data instanceof BunSocket;
  const config = {
    ...native,
    maxPayloadLength: bunMax,
    open(ws: Any) {
      open.add(ws);
      if (ours(ws)) ws.data.open(ws);
      else native?.open?.(ws);
    },
    message(ws: Any, m: Any) {
      if (ours(ws)) ws.data.message(m);
      else native?.message?.(ws, m);
    },
    close(ws: Any, code: number, reason: string) {
      open.delete(ws);
      if (ours(ws)) ws.data.closed(code, reason);
      else native?.close?.(ws, code, reason);
    },
    pong(ws: Any, d: Any) {
      if (ours(ws)) ws.data.seen();
      else native?.pong?.(ws, d);
    },
    ping(ws: Any, d: Any) {
      if (ours(ws)) ws.data.seen();
      else native?.ping?.(ws, d);
    },
    drain(ws: Any) {
      if (!ours(ws)) native?.drain?.(ws);
    },
  };
  const upgrader: Upgrader = (request, handlers: WebSocketHandlers, options: UpgradeWebSocketOptions) => {
    const no = handshakeRefusal(request.headers, request.method);
    if (no !== undefined) return no;
    const limits = checkOptions(options);
    if (limits.maxPayload > bunMax) {
      throw new RangeError(
        `Cannot take WebSocket messages of up to ${limits.maxPayload} bytes: Bun's serve() takes up to ` +
          `${bunMax} (serve()'s option websocket.maxPayloadLength); raise it there`,
      );
    }
    const protocol = pickProtocol(request.headers, options);
    const data = new BunSocket(handlers, limits, protocol ?? "");
    const ok = server().upgrade(request, {
      data,
      headers: protocol !== undefined ? { "sec-websocket-protocol": protocol } : undefined,
    });
    if (!ok) return new Response("Bad Request: not a WebSocket handshake\n", { status: 400 });
    upgraded.add(request);
    return UPGRADED;
  };
  return {
    config,
    UPGRADED,
    /** Puts the upgrade on a request: one shared function, a property set (see src/_ws.ts). */
    mark(request: Request): void {
      (request as Any)[UPGRADE] = upgrader;
    },
    /** Bun's server.upgrade() for the caller's own handlers. */
    upgrade(request: Request, options?: { data?: unknown; headers?: HeadersInit }): boolean {
      if (native === undefined) {
        throw new TypeError(
          "Cannot upgrade with info.upgrade(): give serve() a websocket option with Bun's handlers " +
            "({ websocket: { message(ws, data) {...} } }), or use upgradeWebSocket(request, handlers)",
        );
      }
      const ok = server().upgrade(request, options);
      if (ok) upgraded.add(request);
      return ok;
    },
    /** The handler, whose `undefined` after an upgrade means the upgrade, not a missing Response. */
    handler(handler: ServeHandler): ServeHandler {
      return (request, info) => {
        const r = handler(request, info);
        if (r instanceof Response) return r;
        if (r === undefined) return upgraded.has(request) ? UPGRADED : r;
        return Promise.resolve(r).then((x) => x === undefined && upgraded.has(request) ? UPGRADED : x);
      };
    },
    /** The drain: every open WebSocket closed with 1001. */
    closeAll(): void {
      for (const ws of open) {
        try {
          ws.close(GOING_AWAY, GOING_AWAY_REASON);
        } catch { /* closed */ }
      }
    },
  };
}

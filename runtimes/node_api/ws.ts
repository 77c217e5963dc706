// WebSockets (RFC 6455) on node:http's 'upgrade' event: Node has no WebSocket
// server built in, and neither has Deno's node:http. The package's own
// framing rather than the `ws` library as an optional peer dependency: the
// package keeps no runtime dependency, one code path serves Node and Deno's
// node:http path alike (and Bun's, should its fast path be off), and it
// answered more messages a second than `ws` on this machine
// (bench/ws.mjs). Loaded on the first upgrade request, never at import.
// Not here: permessage-deflate (no client is refused without it; an extension
// the client offers is not agreed on).
import type * as Http from "node:http";
import type { Duplex } from "node:stream";
import type { Buffer as NodeBuffer } from "node:buffer";
import type { Addr } from "../../src/_net.ts";
import type { ServeErrorHandler, ServeHandler, ServeInfo } from "../../src/_http.ts";
import type { ServerWebSocket, UpgradeWebSocketOptions, WebSocketHandlers } from "../../src/websocket.ts";
import {
  checkOptions,
  closeReason,
  handshakeRefusal,
  heartbeat,
  notSendable,
  pickProtocol,
  UPGRADE,
  type Upgrader,
  validCode,
} from "../../src/_ws.ts";
import { type BridgeOptions, toRequest } from "./fetch.ts";

const { Buffer } = process.getBuiltinModule("node:buffer") as typeof import("node:buffer");
type Buf = NodeBuffer;

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const EMPTY = Buffer.alloc(0);
// How long a closing handshake may take before the connection is cut.
const CLOSE_TIMEOUT = 5000;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Unmasks `b` in place with the 4-byte `m`, a word at a time where it can. */
export function unmask(b: Uint8Array, m: Uint8Array): void {
  const n = b.length;
  let i = 0;
  if (n >= 32 && LITTLE_ENDIAN) {
    // Bytes up to a 4-byte boundary first; the mask then runs from byte i.
    const pre = (4 - (b.byteOffset & 3)) & 3;
    for (; i < pre; i++) b[i] ^= m[i & 3];
    const words = (n - i) >>> 2;
    const w = new Int32Array(b.buffer, b.byteOffset + i, words);
    const mw = m[i & 3] | (m[(i + 1) & 3] << 8) | (m[(i + 2) & 3] << 16) | (m[(i + 3) & 3] << 24);
    for (let j = 0; j < words; j++) w[j] ^= mw;
    i += words << 2;
  }
  for (; i < n; i++) b[i] ^= m[i & 3];
}

class ProtocolError extends Error {
  readonly closeCode: number;
  constructor(closeCode: number, message: string) {
    super(message);
    this.closeCode = closeCode;
  }
}

interface Frame {
  fin: boolean;
  opcode: number;
  mask: Buf | undefined;
  length: number;
}

/** One server-side WebSocket over a node:net (or node:tls) socket. */
export class WsConnection implements ServerWebSocket {
  #state: 0 | 1 | 2 | 3 = 1;
  readonly protocol: string;
  readonly #socket: Duplex;
  readonly #h: WebSocketHandlers;
  readonly #max: number;
  #chunks: Buf[] = [];
  #have = 0;
  #frame: Frame | undefined;
  #parts: Buf[] | undefined;
  #partsOpcode = 0;
  #partsLength = 0;
  #closeSent = false;
  #received: { code: number; reason: string } | undefined;
  #failed: number | undefined;
  #corked = false;
  #cut: ReturnType<typeof setTimeout> | undefined;
  readonly #beat: { seen(): void; stop(): void };

  constructor(
    socket: Duplex,
    head: Buf,
    handlers: WebSocketHandlers,
    limits: { maxPayload: number; heartbeat: number },
    protocol: string,
    onGone: () => void,
  ) {
    this.#socket = socket;
    this.#h = handlers;
    this.#max = limits.maxPayload;
    this.protocol = protocol;
    this.#beat = heartbeat(limits.heartbeat, () => this.#send(9, EMPTY), () => socket.destroy());
    (socket as { setNoDelay?: (b: boolean) => void }).setNoDelay?.(true);
    socket.on("data", (c: Buf) => this.#data(c));
    socket.on("error", (e: Error) => this.#error(e));
    socket.once("close", () => {
      this.#state = 3;
      this.#beat.stop();
      clearTimeout(this.#cut);
      onGone();
      const r = this.#received;
      const code = r?.code ?? this.#failed ?? 1006;
      this.#call(() => this.#h.onClose?.(code, r?.reason ?? "", this));
    });
    // The end of a peer that sent no close: its half of the connection is done, so is ours.
    socket.once("end", () => socket.end());
    this.#call(() => this.#h.onOpen?.(this));
    if (head.length > 0) this.#data(head);
    socket.resume();
  }

  get readyState(): 0 | 1 | 2 | 3 {
    return this.#state;
  }

  get bufferedAmount(): number {
    return (this.#socket as { writableLength?: number }).writableLength ?? 0;
  }

  send(data: string | ArrayBuffer | ArrayBufferView): void {
    if (this.#state !== 1) return;
    if (typeof data === "string") return this.#sendText(data);
    if (data instanceof ArrayBuffer) return this.#send(2, Buffer.from(data));
    if (ArrayBuffer.isView(data)) {
      return this.#send(2, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    }
    throw notSendable(data);
  }

  close(code = 1000, reason = ""): void {
    const bytes = closeReason(code, reason);
    const r = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (this.#state !== 1) return;
    this.#state = 2;
    this.#sendClose(code, r);
    // The peer answers with its close, and the connection ends after it.
    this.#cut = setTimeout(() => this.#socket.destroy(), CLOSE_TIMEOUT);
  }

  #call(f: () => void): void {
    try {
      f();
    } catch (e) {
      process.stderr.write(`socket-activate: a WebSocket handler failed: ${(e as Error)?.stack ?? e}\n`);
    }
  }

  #error(e: Error): void {
    this.#call(() => this.#h.onError?.(e, this));
    this.#socket.destroy();
  }

  #cork(): void {
    if (this.#corked) return;
    this.#corked = true;
    // Every frame sent in this tick leaves in one write (writev).
    this.#socket.cork();
    process.nextTick(() => {
      this.#corked = false;
      this.#socket.uncork();
    });
  }

  #header(b: Buf, opcode: number, n: number): number {
    b[0] = 0x80 | opcode;
    if (n < 126) {
      b[1] = n;
      return 2;
    }
    if (n < 65536) {
      b[1] = 126;
      b.writeUInt16BE(n, 2);
      return 4;
    }
    b[1] = 127;
    b.writeUInt32BE(Math.floor(n / 2 ** 32), 2);
    b.writeUInt32BE(n >>> 0, 6);
    return 10;
  }

  #sendText(s: string): void {
    const n = Buffer.byteLength(s);
    if (n >= 1024) return this.#send(1, Buffer.from(s));
    const b = Buffer.allocUnsafe(n + (n < 126 ? 2 : 4));
    b.write(s, this.#header(b, 1, n));
    this.#cork();
    this.#socket.write(b);
  }

  #send(opcode: number, p: Buf): void {
    const n = p.length;
    this.#cork();
    if (n < 1024) {
      const b = Buffer.allocUnsafe(n + (n < 126 ? 2 : 4));
      p.copy(b, this.#header(b, opcode, n));
      this.#socket.write(b);
      return;
    }
    const h = Buffer.allocUnsafe(n < 65536 ? 4 : 10);
    this.#header(h, opcode, n);
    this.#socket.write(h);
    this.#socket.write(p);
  }

  #sendClose(code: number | undefined, reason: Buf = EMPTY): void {
    if (this.#closeSent) return;
    this.#closeSent = true;
    let p = EMPTY;
    if (code !== undefined) {
      p = Buffer.allocUnsafe(2 + reason.length);
      p.writeUInt16BE(code, 0);
      reason.copy(p, 2);
    }
    this.#send(8, p);
  }

  /** Fails the connection (RFC 6455 §7.1.7): a close with `code`, then the TCP connection ends. */
  #fail(e: ProtocolError): void {
    if (this.#failed !== undefined || this.#state === 3) return;
    this.#failed = e.closeCode;
    this.#state = 2;
    this.#chunks = [];
    this.#have = 0;
    this.#call(() => this.#h.onError?.(e, this));
    this.#sendClose(e.closeCode, Buffer.from(e.message.slice(0, 123)));
    this.#socket.end();
    this.#cut = setTimeout(() => this.#socket.destroy(), CLOSE_TIMEOUT);
  }

  #byte(i: number): number {
    for (const c of this.#chunks) {
      if (i < c.length) return c[i];
      i -= c.length;
    }
    return -1;
  }

  #take(n: number): Buf {
    this.#have -= n;
    if (n === 0) return EMPTY;
    const first = this.#chunks[0];
    if (first.length === n) {
      this.#chunks.shift();
      return first;
    }
    if (first.length > n) {
      this.#chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.#chunks[0];
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(k);
    }
    return out;
  }

  #data(chunk: Buf): void {
    if (this.#failed !== undefined || this.#state === 3) return;
    this.#beat.seen();
    this.#chunks.push(chunk);
    this.#have += chunk.length;
    try {
      this.#parse();
    } catch (e) {
      if (e instanceof ProtocolError) this.#fail(e);
      else throw e;
    }
  }

  #parse(): void {
    while (this.#failed === undefined && this.#state !== 3) {
      let f = this.#frame;
      if (f === undefined) {
        if (this.#have < 2) return;
        const b0 = this.#byte(0), b1 = this.#byte(1);
        const masked = (b1 & 0x80) !== 0;
        let length = b1 & 0x7f;
        const hl = (length === 126 ? 4 : length === 127 ? 10 : 2) + (masked ? 4 : 0);
        if (this.#have < hl) return;
        const h = this.#take(hl);
        const opcode = b0 & 0x0f;
        const fin = (b0 & 0x80) !== 0;
        if ((b0 & 0x70) !== 0) throw new ProtocolError(1002, "RSV bits set without an extension agreed on");
        if (!masked) throw new ProtocolError(1002, "an unmasked frame from a client");
        if (length === 126) length = h.readUInt16BE(2);
        else if (length === 127) {
          const hi = h.readUInt32BE(2);
          if (hi > 0x1fffff) throw new ProtocolError(1009, "a frame longer than 2^53 bytes");
          length = hi * 2 ** 32 + h.readUInt32BE(6);
        }
        if (opcode >= 8) {
          if (opcode > 10) throw new ProtocolError(1002, `an unknown control opcode ${opcode}`);
          if (!fin) throw new ProtocolError(1002, "a fragmented control frame");
          if (length > 125) throw new ProtocolError(1002, "a control frame longer than 125 bytes");
        } else if (opcode === 0) {
          if (this.#parts === undefined) {
            throw new ProtocolError(1002, "a continuation with no message begun");
          }
        } else if (opcode === 1 || opcode === 2) {
          if (this.#parts !== undefined) {
            throw new ProtocolError(1002, "a new message before the last one ended");
          }
        } else throw new ProtocolError(1002, `an unknown opcode ${opcode}`);
        if (opcode < 8 && (opcode === 0 ? this.#partsLength : 0) + length > this.#max) {
          throw new ProtocolError(1009, `a message larger than ${this.#max} bytes`);
        }
        f = this.#frame = { fin, opcode, mask: h.subarray(hl - 4), length };
      }
      if (this.#have < f.length) return;
      this.#frame = undefined;
      const p = this.#take(f.length);
      if (f.mask !== undefined && p.length > 0) unmask(p, f.mask);
      this.#onFrame(f, p);
    }
  }

  #onFrame(f: Frame, p: Buf): void {
    switch (f.opcode) {
      case 9:
        if (this.#state === 1) this.#send(10, p);
        return;
      case 10:
        return;
      case 8:
        return this.#onClose(p);
      case 0: {
        this.#parts!.push(p);
        this.#partsLength += p.length;
        if (!f.fin) return;
        const whole = Buffer.concat(this.#parts!, this.#partsLength);
        const opcode = this.#partsOpcode;
        this.#parts = undefined;
        this.#partsLength = 0;
        return this.#message(opcode, whole);
      }
      default:
        if (f.fin) return this.#message(f.opcode, p);
        this.#parts = [p];
        this.#partsOpcode = f.opcode;
        this.#partsLength = p.length;
    }
  }

  #message(opcode: number, p: Buf): void {
    if (this.#state !== 1) return; // closing: what comes in until the peer's close is dropped
    let data: string | Uint8Array;
    if (opcode === 1) {
      try {
        data = utf8.decode(p);
      } catch {
        throw new ProtocolError(1007, "a text message that is not UTF-8");
      }
    } else data = new Uint8Array(p.buffer, p.byteOffset, p.length);
    this.#call(() => this.#h.onMessage?.(data, this));
  }

  #onClose(p: Buf): void {
    let code = 1005, reason = "";
    if (p.length === 1) throw new ProtocolError(1002, "a close frame of 1 byte");
    if (p.length >= 2) {
      code = p.readUInt16BE(0);
      if (!validCode(code)) throw new ProtocolError(1002, `a close code ${code} that may not be sent`);
      try {
        reason = utf8.decode(p.subarray(2));
      } catch {
        throw new ProtocolError(1007, "a close reason that is not UTF-8");
      }
    }
    this.#received = { code, reason };
    this.#state = 2;
    // Our answer echoes the code (RFC 6455 §5.5.1); the server ends the TCP connection.
    this.#sendClose(code === 1005 ? undefined : code, Buffer.from(reason));
    this.#socket.end();
    clearTimeout(this.#cut);
    this.#cut = setTimeout(() => this.#socket.destroy(), CLOSE_TIMEOUT);
  }
}

/** What the upgrade listener needs of its server (runtimes/node_api/upgrade.ts). */
export interface UpgradeContext {
  handler: ServeHandler;
  scheme: "http" | "https";
  onError: ServeErrorHandler | undefined;
  bridge: BridgeOptions;
  /** The server's open WebSockets, for the drain. */
  open: Set<ServerWebSocket>;
}

function remoteOf(s: { remoteAddress?: string; remotePort?: number }): Addr {
  return s.remoteAddress !== undefined && s.remotePort !== undefined
    ? { transport: "tcp", hostname: s.remoteAddress, port: s.remotePort }
    : { transport: "unix", path: "" };
}

const REASONS: Record<number, string> = {
  400: "Bad Request",
  413: "Payload Too Large",
  426: "Upgrade Required",
  500: "Internal Server Error",
  501: "Not Implemented",
};

// deno-lint-ignore no-explicit-any
type DenoUpgrade = (request: Request, options?: any) => { response: Response; socket: WebSocket };

interface DenoPending {
  /** Deno.upgradeWebSocket() was called for this request and took the socket over. */
  upgraded: boolean;
  take(upgrade: DenoUpgrade, options: object): ReturnType<DenoUpgrade>;
}

/** The requests of node:http's upgrade event in Deno that Deno.upgradeWebSocket() may take over. */
const denoPending = new WeakMap<Request, DenoPending>();
let denoOriginal: DenoUpgrade | undefined;

/**
 * Deno.upgradeWebSocket() on serve()'s node:http path in Deno. Deno's own
 * function takes a node:net socket (`{ socket, head }` in its options, the
 * way Deno serves node:http's upgrade event): it writes the 101, takes the
 * TCP stream out of node:net (`_handle.takeStream()`) and makes it Deno's
 * own WebSocket. A request that Deno's server did not make has no socket
 * Deno knows of, so Deno.upgradeWebSocket is wrapped, once, to pass this
 * request's socket on; any other request goes to Deno's function as it
 * came. TCP only: a unix socket's handle and TLS have no takeStream(), and
 * Deno then throws its own TypeError, which goes to onError as any throw of
 * the handler. The connection is counted until Deno's WebSocket closes, and
 * the drain closes the socket with 1001 (Deno checks the code of a client's
 * close() only).
 */
function denoUpgrades(
  ctx: UpgradeContext,
  request: Request,
  socket: Duplex,
  head: Buf,
): DenoPending | undefined {
  const D = (globalThis as { Deno?: { upgradeWebSocket?: DenoUpgrade } }).Deno;
  if (typeof D?.upgradeWebSocket !== "function") return undefined;
  if (denoOriginal === undefined) {
    const original = denoOriginal = D.upgradeWebSocket;
    D.upgradeWebSocket = function upgradeWebSocket(r: Request, options?: object) {
      const p = denoPending.get(r);
      if (p === undefined) return original.call(D, r, options);
      denoPending.delete(r);
      return p.take(original, options ?? {});
    };
  }
  const p: DenoPending = {
    upgraded: false,
    take(upgrade, options) {
      const got = upgrade.call(D, request, { ...options, socket, head });
      p.upgraded = true;
      const ws = got.socket;
      const s = ws as unknown as ServerWebSocket;
      ctx.open.add(s);
      ws.addEventListener("close", () => {
        ctx.open.delete(s);
        // Deno took the stream out of node:net without a 'close': the connection ends here.
        socket.emit("close", false);
      });
      return got;
    },
  };
  denoPending.set(request, p);
  return p;
}

/** A Response written on a raw socket, then the connection ends. */
async function writeResponse(socket: Duplex, r: Response): Promise<void> {
  const body = r.body === null ? EMPTY : Buffer.from(await r.arrayBuffer());
  let head = `HTTP/1.1 ${r.status} ${r.statusText || REASONS[r.status] || ""}\r\n`;
  r.headers.forEach((v, k) => {
    if (k !== "content-length" && k !== "connection" && k !== "transfer-encoding") head += `${k}: ${v}\r\n`;
  });
  head += `content-length: ${body.length}\r\nconnection: close\r\n\r\n`;
  if (!socket.writable) return;
  socket.write(head);
  socket.end(body);
}

function refuse(socket: Duplex, status: number): void {
  socket.end(`HTTP/1.1 ${status} ${REASONS[status] ?? ""}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
}

/**
 * A request node:http routed to 'upgrade' (it carries an Upgrade header):
 * the handler answers it as any other, and where it returned
 * upgradeWebSocket()'s response, the connection becomes a WebSocket.
 */
export function onUpgrade(ctx: UpgradeContext, req: Http.IncomingMessage, socket: Duplex, head: Buf): void {
  socket.on("error", () => {}); // a client gone mid-handshake is no uncaught error
  const pending = new WeakMap<
    Response,
    {
      handlers: WebSocketHandlers;
      options: UpgradeWebSocketOptions;
      protocol: string | undefined;
      limits: { maxPayload: number; heartbeat: number };
    }
  >();
  const res = {
    closed: false,
    writableFinished: false,
    once: () => {},
    headersSent: false,
  } as unknown as Http.ServerResponse;
  let request: Request | number;
  try {
    request = toRequest(req, res, ctx.scheme, ctx.bridge);
  } catch {
    request = 400;
  }
  if (typeof request === "number") return refuse(socket, request);
  const upgrader: Upgrader = (r, handlers, options) => {
    const no = handshakeRefusal(r.headers, r.method);
    if (no !== undefined) return no;
    const limits = checkOptions(options);
    const marker = new Response(null, { status: 200 });
    pending.set(marker, { handlers, options, protocol: pickProtocol(r.headers, options), limits });
    return marker;
  };
  Object.defineProperty(request, UPGRADE, { value: upgrader });
  const viaDeno = denoUpgrades(ctx, request, socket, head);
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  const info: ServeInfo = {
    remoteAddr: remoteOf(socket as unknown as { remoteAddress?: string }),
    completed: closed,
  };
  const r = request;
  const answer = (x: unknown): void | Promise<void> => {
    const up = x instanceof Response ? pending.get(x) : undefined;
    if (up === undefined) {
      if (x instanceof Response) {
        // Deno.upgradeWebSocket() took the socket over (denoUpgrades()) and wrote the 101 itself.
        if (x.status === 101 && viaDeno?.upgraded === true) return;
        // A 101 of another's making, which node:http cannot carry out.
        if (x.status === 101) {
          process.stderr.write(
            "socket-activate: the serve() handler returned a 101 that no upgrade on this path made (on serve()'s " +
              "node:http path Deno.upgradeWebSocket() works for TCP without TLS; upgradeWebSocket() from " +
              "socket-activate works on every path)\n",
          );
          return refuse(socket, 501);
        }
        return writeResponse(socket, x);
      }
      throw new TypeError(
        `The serve() handler returned ${x === null ? "null" : typeof x} instead of a Response`,
      );
    }
    const key = req.headers["sec-websocket-key"] as string;
    const accept = (process.getBuiltinModule("node:crypto") as typeof import("node:crypto"))
      .createHash("sha1").update(key.trim() + GUID).digest("base64");
    if (!socket.writable) return;
    socket.write(
      "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n" +
        `sec-websocket-accept: ${accept}\r\n` +
        (up.protocol !== undefined ? `sec-websocket-protocol: ${up.protocol}\r\n` : "") + "\r\n",
    );
    socket.removeAllListeners("error");
    let ws: WsConnection | undefined = undefined;
    ws = new WsConnection(
      socket,
      head,
      up.handlers,
      up.limits,
      up.protocol ?? "",
      () => ctx.open.delete(ws!),
    );
    if (ws.readyState !== 3) ctx.open.add(ws);
  };
  const fail = (e: unknown) => {
    let alt: ReturnType<ServeErrorHandler> = undefined;
    try {
      alt = ctx.onError?.(e, r);
    } catch (e2) {
      e = e2;
    }
    Promise.resolve(alt).then((x) => {
      if (x instanceof Response) return writeResponse(socket, x);
      if (ctx.onError === undefined) {
        process.stderr.write(`socket-activate: serve() handler failed: ${(e as Error)?.stack ?? e}\n`);
      }
      refuse(socket, 500);
    }).catch(() => socket.destroy());
  };
  socket.pause();
  let result;
  try {
    result = ctx.handler(r, info);
  } catch (e) {
    return fail(e);
  }
  Promise.resolve(result).then(answer).catch(fail);
}

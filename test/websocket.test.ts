// WebSockets through serve() (upgradeWebSocket(), src/websocket.ts) in each
// runtime, on each of its paths, under the real systemd-socket-activate,
// with real clients: the runtime's own WebSocket, the `ws` library's client,
// and raw frames written by hand for the framing edge cases, against the
// package's own RFC 6455 framing (runtimes/node_api/ws.ts: Node, and the
// node:http path of Deno and Bun).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as crypto from "node:crypto";
import * as net from "node:net";
// @ts-expect-error: ws ships no types, and @types/ws is no dev dependency
import WsModule from "ws";
import { cliCommand, fixtureCommand, freePort, type Run, RUNTIME, SSA, start, until } from "./_util.ts";

/** What the test uses of the `ws` library's client. */
interface WsClient {
  once(e: "open" | "close", f: () => void): void;
  once(e: "error", f: (e: Error) => void): void;
  on(e: "message", f: (d: { toString(): string }) => void): void;
  send(d: string): void;
  close(code?: number): void;
}
const WS = WsModule as new (url: string) => WsClient;

interface Path {
  name: string;
  env: Record<string, string>;
  /** The package's own framing answers (raw-frame cases apply). */
  own: boolean;
  skip?: string;
}

const PATHS: Path[] = RUNTIME === "node" ? [{ name: "node:http path", env: {}, own: true }] : [
  {
    name: "fast path",
    env: {},
    own: false,
  },
  { name: "node:http path", env: { SOCKET_ACTIVATE_HTTP_FAST: "0" }, own: true },
];

async function serveWs(env: Record<string, string>): Promise<{ run: Run; port: number }> {
  const port = await freePort();
  const passed = Object.keys(env).flatMap((k) => ["-E", k]);
  const run = start([SSA, "-l", `127.0.0.1:${port}`, ...passed, ...fixtureCommand("ws.ts")], env);
  // The first connection execs the runtime; until systemd-socket-activate listens it is refused.
  await until(
    () => /Listening on/.test(run.stderr()),
    10000,
    () => `systemd-socket-activate: ${run.stderr()}`,
  );
  return { run, port };
}

/** A GET with Connection: close, raw: the whole response. */
function get(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1");
    let got = "";
    s.on("data", (d) => (got += d.toString("latin1")));
    s.on("end", () => resolve(got));
    s.on("error", reject);
    s.write(`GET ${path} HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\nconnection: close\r\n\r\n`);
  });
}

/**
 * An open client for the 1,000-socket case: the ws library's, in Deno the
 * runtime's own WebSocket (the ws library runs on Deno's node:net shim, at
 * about half the speed), behind the ws calls the case makes.
 */
function bulkClient(url: string): Promise<WsClient> {
  if (RUNTIME !== "deno") {
    return new Promise((resolve, reject) => {
      const c = new WS(url);
      c.once("open", () => resolve(c));
      c.once("error", reject);
    });
  }
  return open(url).then((ws): WsClient => ({
    once: (e: string, f: (e?: Error) => void) =>
      ws.addEventListener(
        e === "open" ? "open" : e,
        () => f(e === "error" ? new Error("error") : undefined),
        {
          once: true,
        },
      ),
    on: (_e: "message", f: (d: { toString(): string }) => void) =>
      ws.addEventListener("message", (m) => f(m.data)),
    send: (d: string) => ws.send(d),
    close: (code?: number) => ws.close(code),
  } as WsClient));
}

/** What `f` resolves with, or a rejection naming `what` after `ms`. */
function within<T>(ms: number, what: string, f: () => Promise<T>): Promise<T> {
  let t: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms);
  });
  return Promise.race([f(), late]).finally(() => clearTimeout(t));
}

/** The runtime's own WebSocket client, opened. */
function open(url: string, protocols?: string[]): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new Error(`could not open ${url}`));
  });
}

function next(ws: WebSocket): Promise<string | ArrayBuffer> {
  return new Promise((resolve, reject) => {
    ws.onmessage = (e) => resolve(e.data);
    ws.onclose = (e) => reject(new Error(`closed ${e.code} before a message`));
  });
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => {
    if (ws.readyState === 3) return resolve({ code: -1, reason: "already" });
    ws.onclose = (e) => resolve({ code: e.code, reason: e.reason });
  });
}

/** A raw TCP client that did the handshake: what it reads, frames it writes masked. */
class Raw {
  s: net.Socket;
  buf = Buffer.alloc(0);
  waiters: (() => void)[] = [];
  ended = false;
  constructor(s: net.Socket) {
    this.s = s;
    s.on("data", (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.waiters.splice(0).forEach((w) => w());
    });
    s.on("close", () => {
      this.ended = true;
      this.waiters.splice(0).forEach((w) => w());
    });
    s.on("error", () => {});
  }
  static async handshake(port: number, path: string, headers: Record<string, string> = {}): Promise<Raw> {
    const s = net.connect(port, "127.0.0.1");
    await new Promise((r) => s.once("connect", r));
    const h = {
      host: `127.0.0.1:${port}`,
      upgrade: "websocket",
      connection: "Upgrade",
      "sec-websocket-key": crypto.randomBytes(16).toString("base64"),
      "sec-websocket-version": "13",
      ...headers,
    };
    const lines = Object.entries(h).filter(([, v]) => v !== "").map(([k, v]) => `${k}: ${v}\r\n`).join("");
    s.write(`GET ${path} HTTP/1.1\r\n${lines}\r\n`);
    return new Raw(s);
  }
  async wait(cond: () => boolean, ms = 10000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (this.ended) {
        throw new Error(`the server closed; read: ${this.buf.toString("latin1").slice(0, 200)}`);
      }
      if (Date.now() > deadline) {
        throw new Error(`timed out; read: ${this.buf.toString("latin1").slice(0, 200)}`);
      }
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }
  /** The response head (status line and headers). */
  async head(): Promise<string> {
    await this.wait(() => this.buf.indexOf("\r\n\r\n") >= 0);
    const i = this.buf.indexOf("\r\n\r\n");
    const head = this.buf.subarray(0, i).toString("latin1");
    this.buf = this.buf.subarray(i + 4);
    return head;
  }
  send(opcode: number, payload: Buffer | string, fin = true): void {
    const p = typeof payload === "string" ? Buffer.from(payload) : payload;
    const mask = crypto.randomBytes(4);
    const n = p.length;
    const len = n < 126
      ? Buffer.from([n | 0x80])
      : n < 65536
      ? Buffer.from([126 | 0x80, n >> 8, n & 255])
      : Buffer.concat([
        Buffer.from([127 | 0x80, 0, 0, 0, 0]),
        Buffer.from([n >>> 24, (n >> 16) & 255, (n >> 8) & 255, n & 255]),
      ]);
    const masked = Buffer.from(p.map((b, i) => b ^ mask[i & 3]));
    this.s.write(Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | opcode]), len, mask, masked]));
  }
  /** The next frame from the server, other than the heartbeat's pings. */
  async frame(): Promise<{ opcode: number; payload: Buffer }> {
    for (;;) {
      const f = await this.anyFrame();
      if (f.opcode !== 9) return f;
    }
  }
  async anyFrame(): Promise<{ opcode: number; payload: Buffer }> {
    const size = () => {
      if (this.buf.length < 2) return -1;
      const n = this.buf[1] & 0x7f;
      if (n === 126) return this.buf.length < 4 ? -1 : 4 + this.buf.readUInt16BE(2);
      if (n === 127) return this.buf.length < 10 ? -1 : 10 + Number(this.buf.readBigUInt64BE(2));
      return 2 + n;
    };
    await this.wait(() => size() >= 0 && this.buf.length >= size());
    const total = size();
    const n = this.buf[1] & 0x7f;
    const hl = n === 126 ? 4 : n === 127 ? 10 : 2;
    const f = { opcode: this.buf[0] & 0x0f, payload: Buffer.from(this.buf.subarray(hl, total)) };
    this.buf = this.buf.subarray(total);
    return f;
  }
  /** The close frame's code, after any other frames. */
  async closeCode(): Promise<number> {
    for (;;) {
      const f = await this.frame();
      if (f.opcode === 8) return f.payload.length >= 2 ? f.payload.readUInt16BE(0) : 1005;
    }
  }
}

for (const p of PATHS) {
  test(`upgradeWebSocket() on the ${p.name}: clients echo, close, and SIGTERM's drain sends 1001`, {
    skip: p.skip,
  }, async () => {
    const { run, port } = await serveWs(p.env);
    const url = `ws://127.0.0.1:${port}`;
    try {
      // A plain request first (it execs the server), then the handshake refusals, which leave it serving.
      // Plain requests with Connection: close: an idle keep-alive connection of the client's would hold the drain.
      let plain = "";
      for (const deadline = Date.now() + 15000; plain === "";) {
        plain = await get(port, "/").catch((e) => {
          if (Date.now() > deadline) throw e;
          return new Promise<string>((r) => setTimeout(() => r(""), 25));
        });
      }
      assert.match(plain, /^HTTP\/1.1 200 [^]*\r\n\r\nplain\n$/);
      assert.match(await get(port, "/echo"), /^HTTP\/1.1 426 /);
      for (
        const [headers, status] of [
          [{ "sec-websocket-key": "short" }, 400],
          [{ "sec-websocket-version": "8" }, 426],
        ] as const
      ) {
        const r = await Raw.handshake(port, "/echo", headers);
        assert.match(await r.head(), new RegExp(`^HTTP/1.1 ${status} `), JSON.stringify(headers));
        r.s.destroy();
      }

      // The runtime's own client: text, binary, 1 MiB, a subprotocol, a close with code and reason.
      const ws = await open(`${url}/echo`);
      ws.send("hello");
      assert.equal(await next(ws), "hello");
      ws.send(new Uint8Array([0, 1, 2, 255]));
      assert.deepEqual(new Uint8Array((await next(ws)) as ArrayBuffer), new Uint8Array([0, 1, 2, 255]));
      const big = crypto.randomBytes(1 << 20);
      ws.send(big);
      assert.ok(Buffer.from((await next(ws)) as ArrayBuffer).equals(big), "1 MiB echoed");
      ws.send("buffered");
      assert.match(String(await next(ws)), /^\d+$/);
      ws.send("misuse");
      assert.equal(
        String(await next(ws)),
        [
          "RangeError: Cannot close a WebSocket with code 1005: give 1000, 1001, 1008, 1011 or 3000-4999",
          "RangeError: Cannot close a WebSocket with a reason of 124 bytes: 123 at most",
          "TypeError: Cannot send object over a WebSocket: give a string, an ArrayBuffer or bytes",
        ].join("\n"),
      );
      ws.send("close 4001 enough");
      assert.deepEqual(await closed(ws), { code: 4001, reason: "enough" });
      await run.stderrMatch(/closed 4001/);
      const chat = await open(`${url}/chat`, ["chat.v1", "chat.v2"]);
      assert.equal(chat.protocol, "chat.v2");
      chat.close(1000, "bye");
      await run.stderrMatch(/closed 1000 bye/);

      if (RUNTIME === "bun" && !p.own) {
        // Bun's own way: serve()'s websocket handlers, and info.upgrade().
        const b = await open(`${url}/bun`);
        b.send("hi");
        assert.equal(await next(b), "bun: hi");
        b.close();
      }
      // Deno's own way: Deno.upgradeWebSocket(request), as Deno.serve's users write it.
      const denoOwn = RUNTIME === "deno";
      if (denoOwn) {
        const d = await open(`${url}/deno`);
        d.send("hi");
        assert.equal(await next(d), "deno: hi");
        d.close(1000, "done");
        await run.stderrMatch(/closed 1000 done/);
      }

      // 1,000 sockets at once, 10 messages each, none lost; bounded, so that a socket closed early fails the
      // test instead of leaving it waiting. The ws library's client (Deno: its own, twice as fast as ws there).
      const echoed = await within(60000, "1,000 sockets echoing 10 messages each", async () => {
        const clients = await Promise.all(Array.from({ length: 1000 }, () => bulkClient(`${url}/echo`)));
        const counts = await Promise.all(clients.map((c, i) =>
          new Promise<number>((resolve, reject) => {
            let n = 0;
            c.once("close", () => reject(new Error(`socket ${i} closed after ${n} of 10 messages`)));
            c.on("message", (d) => {
              if (String(d) !== `${i}:${n}`) reject(new Error(`socket ${i} got ${String(d)}, not ${i}:${n}`));
              if (++n === 10) resolve(n);
            });
            for (let k = 0; k < 10; k++) c.send(`${i}:${k}`);
          })
        ));
        await Promise.all(clients.map((c) =>
          new Promise<void>((resolve) => {
            c.once("close", () => resolve());
            c.close(1000);
          })
        ));
        return counts.reduce((a, b) => a + b);
      });
      assert.equal(echoed, 10000);

      // Fragments with a ping between them, on every path; the pong comes first, then the whole message.
      const r = await Raw.handshake(port, "/echo");
      assert.match(await r.head(), /^HTTP\/1.1 101 /);
      r.send(1, "frag", false);
      r.send(9, "ping!");
      r.send(0, "men", false);
      r.send(0, "ted");
      let f = await r.frame();
      assert.deepEqual([f.opcode, String(f.payload)], [10, "ping!"]);
      f = await r.frame();
      assert.deepEqual([f.opcode, String(f.payload)], [1, "fragmented"]);
      if (p.own) {
        // A close without a code is answered with one without a code.
        r.send(8, Buffer.alloc(0));
        assert.equal(await r.closeCode(), 1005);
        // Protocol errors: the code the server fails the connection with.
        const cases: [string, (r: Raw) => void, number][] = [
          ["bad UTF-8 text", (r) => r.send(1, Buffer.from([0xc3, 0x28])), 1007],
          ["a message over maxPayload", (r) => r.send(2, Buffer.alloc(1025)), 1009],
          ["a close code that may not be sent", (r) => r.send(8, Buffer.from([0x03, 0xed])), 1002],
          ["a continuation with nothing begun", (r) => r.send(0, "x"), 1002],
          ["a fragmented ping", (r) => r.send(9, "x", false), 1002],
        ];
        for (const [what, act, code] of cases) {
          const c = await Raw.handshake(port, "/small");
          assert.match(await c.head(), /^HTTP\/1.1 101 /);
          act(c);
          assert.equal(await c.closeCode(), code, what);
          await c.wait(() => c.ended);
        }
      }
      // A client that vanishes (answers no ping): the heartbeat frees it (Deno's fast path: Deno's idleTimeout).
      const gone = await Raw.handshake(port, "/beat");
      assert.match(await gone.head(), /^HTTP\/1.1 101 /);
      const before = (run.stderr().match(/closed 1006/g) ?? []).length;
      await gone.wait(() => gone.ended, 5000);
      await until(() => (run.stderr().match(/closed 1006/g) ?? []).length > before, 5000);

      // The drain: an open socket gets 1001, then the server exits.
      const last = [await open(`${url}/echo`), ...denoOwn ? [await open(`${url}/deno`)] : []];
      const bye = Promise.all(last.map(closed));
      run.signal("SIGTERM");
      const timeout = new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`no close after SIGTERM:\n${run.stderr()}`)), 10000)
      );
      assert.deepEqual((await Promise.race([bye, timeout])).map((c) => c.code), last.map(() => 1001));
      await run.stderrMatch(/drained/);
      assert.equal(await run.exited(), 0);
    } finally {
      try {
        run.signal("SIGKILL");
      } catch { /* gone */ }
    }
  });
}

test("serve({ idleExit }) counts an open WebSocket as a connection: no exit while one is open, exit 0 after", async () => {
  // idleExit serves through node:http in every runtime; in Deno through Deno's own upgrade (the package's framing
  // there is the code Node and Bun run here).
  const { run, port } = await serveWs({ WS_IDLE_EXIT: "0.5" });
  const url = `ws://127.0.0.1:${port}`;
  try {
    let first: WebSocket | undefined;
    for (const deadline = Date.now() + 15000; first === undefined;) {
      first = await open(`${url}/${RUNTIME === "deno" ? "deno" : "echo"}`).catch((e) => {
        if (Date.now() > deadline) throw e;
        return new Promise<undefined>((r) => setTimeout(() => r(undefined), 25));
      });
    }
    for (const ws of [first]) {
      // More than twice idleExit with this socket open (and messages echoed): the server is still there.
      await new Promise((r) => setTimeout(r, 1200));
      ws.send("still here");
      assert.match(String(await next(ws)), /still here$/);
      ws.close(1000, "bye");
      await closed(ws);
    }
    const closedAt = Date.now();
    assert.equal(await run.exited(10000), 0, run.stderr());
    const idle = Date.now() - closedAt;
    // The server's idle clock starts as it sees the close, a little before this client does.
    assert.ok(idle >= 250, `exited ${idle} ms after the last socket closed, 500 ms expected`);
  } finally {
    try {
      run.signal("SIGKILL");
    } catch { /* gone */ }
  }
});

test(
  "socket-activate run: a reload (SIGHUP) closes the old process's WebSockets with 1001; the new one serves",
  {
    skip: RUNTIME === "node" && Number(process.versions.node.split(".")[0]) < 26
      ? "the launcher and the drain are the same code on every Node line: Node 26 runs this"
      : undefined,
  },
  async () => {
    const port = await freePort();
    const r = start([
      ...cliCommand(),
      "run",
      "--now",
      "--restart",
      "--grace",
      "0.3",
      "-l",
      `127.0.0.1:${port}`,
      "--",
      ...fixtureCommand("ws.ts"),
    ]);
    const url = `ws://127.0.0.1:${port}/echo`;
    try {
      await until(
        () => / started .* as PID \d+/.test(r.stderr()),
        15000,
        () => `the first start: ${r.stderr()}`,
      );
      let old: WebSocket | undefined;
      for (const deadline = Date.now() + 15000; old === undefined;) {
        old = await open(url).catch((e) => {
          if (Date.now() > deadline) {
            throw e;
          }
          return new Promise<undefined>((res) => setTimeout(() => res(undefined), 50));
        });
      }
      old.send("before");
      assert.equal(await next(old), "before");
      const bye = closed(old);
      r.signal("SIGHUP");
      const got = await within(15000, "the old socket's close after SIGHUP", () => bye);
      assert.deepEqual(got, { code: 1001, reason: "server shutting down" }, r.stderr());
      const fresh = await open(url);
      fresh.send("after");
      assert.equal(await next(fresh), "after");
      fresh.close(1000);
      await closed(fresh);
    } finally {
      r.signal("SIGTERM");
      await r.exited(15000).catch(() => r.signal("SIGKILL"));
    }
  },
);

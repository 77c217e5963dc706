// A WebSocket echo server for bench/ws.mjs. WS_SERVER picks it:
//   pkg   the package's serve() with upgradeWebSocket(), on the activated fd
//         (run under systemd-socket-activate; serve()'s fast path in Deno and
//         Bun), else on 127.0.0.1:$PORT
//   ws    the `ws` library on node:http, on $PORT (Node's reference)
//   deno  Deno.serve with Deno.upgradeWebSocket, on $PORT (Deno's own)
//   bun   Bun.serve with its websocket handlers, on $PORT (Bun's own)
// Every one echoes each message as it came (text or binary). Prints "ready"
// on stderr once it listens.
import * as http from "node:http";
import { serve, upgradeWebSocket } from "../mod.ts";

// deno-lint-ignore no-explicit-any
type Any = any;
const port = Number(process.env.PORT ?? 0);
const hostname = "127.0.0.1";
const ready = () => process.stderr.write("ready\n");
const kind = process.env.WS_SERVER;

if (kind === "ws") {
  const { WebSocketServer } = await import("ws");
  const server = http.createServer((_q, s) => s.end("ws\n"));
  const wss = new WebSocketServer({ server });
  wss.on(
    "connection",
    (ws: Any) => ws.on("message", (d: unknown, binary: boolean) => ws.send(d, { binary })),
  );
  server.listen(port, hostname, ready);
} else if (kind === "deno") {
  const D = (globalThis as Any).Deno;
  D.serve({ port, hostname, onListen: ready }, (req: Request) => {
    const { socket, response } = D.upgradeWebSocket(req);
    socket.binaryType = "arraybuffer";
    socket.onmessage = (e: MessageEvent) => socket.send(e.data);
    return response;
  });
} else if (kind === "bun") {
  (globalThis as Any).Bun.serve({
    port,
    hostname,
    fetch: (req: Request, server: Any) => server.upgrade(req) ? undefined : new Response("bun\n"),
    websocket: { message: (ws: Any, m: unknown) => ws.send(m) },
  });
  ready();
} else {
  await serve(
    { fallback: { port, hostname } },
    (request) => upgradeWebSocket(request, { onMessage: (data, ws) => ws.send(data) }),
  );
  ready();
}

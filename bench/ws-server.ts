// A WebSocket echo server for bench/ws.mjs on port $PORT: the package's
// serve() with upgradeWebSocket() (WS_SERVER=pkg), or the `ws` library on
// node:http (WS_SERVER=ws), the reference in Node. Prints "ready" on stderr.
import * as http from "node:http";
import { serve, upgradeWebSocket } from "../mod.ts";

const port = Number(process.env.PORT);
if (process.env.WS_SERVER === "ws") {
  const { WebSocketServer } = await import("ws");
  const server = http.createServer((_q, s) => s.end("ws\n"));
  const wss = new WebSocketServer({ server });
  wss.on(
    "connection",
    (
      ws: {
        on(e: string, f: (d: unknown, binary: boolean) => void): void;
        send(d: unknown, o: unknown): void;
      },
    ) => ws.on("message", (d, binary) => ws.send(d, { binary })),
  );
  server.listen(port, "127.0.0.1", () => process.stderr.write("ready\n"));
} else {
  await serve(
    { fallback: { port, hostname: "127.0.0.1" } },
    (request) => upgradeWebSocket(request, { onMessage: (data, ws) => ws.send(data) }),
  );
  process.stderr.write("ready\n");
}

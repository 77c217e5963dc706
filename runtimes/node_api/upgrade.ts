// The hook of WebSockets into a node:http server that runs a fetch-style
// handler (runtimes/node_api/fetch.ts): node:http hands a request with an
// Upgrade header to the 'upgrade' event with the raw socket, and
// runtimes/node_api/ws.ts, loaded on the first such request, answers it.
import type * as Http from "node:http";
import type { Duplex } from "node:stream";
import type { ServerWebSocket } from "../../src/websocket.ts";
import { CLOSE_ALL, GOING_AWAY, GOING_AWAY_REASON } from "../../src/_ws.ts";
import type { UpgradeContext } from "./ws.ts";

let ws: Promise<typeof import("./ws.ts")> | undefined;

/** Answers `server`'s upgrade requests, and lets its drain close the WebSockets with 1001. */
export function upgrades(server: Http.Server, ctx: Omit<UpgradeContext, "open">): void {
  const open = new Set<ServerWebSocket>();
  const c: UpgradeContext = { ...ctx, open };
  server.on("upgrade", (req: Http.IncomingMessage, socket: Duplex, head: Uint8Array) => {
    socket.pause(); // until ws.ts reads it: no byte of the first frames lost meanwhile
    (ws ??= import("./ws.ts")).then((m) => m.onUpgrade(c, req, socket, head as never)).catch((e) => {
      process.stderr.write(`socket-activate: a WebSocket upgrade failed: ${(e as Error)?.stack ?? e}\n`);
      socket.destroy();
    });
  });
  Object.defineProperty(server, CLOSE_ALL, {
    value: () => {
      for (const s of open) s.close(GOING_AWAY, GOING_AWAY_REASON);
    },
  });
}

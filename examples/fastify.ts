// A Fastify app on the socket systemd passes, or on port 8080 ($PORT) when
// started by hand. Fastify's serverFactory hands over the node:http server,
// which listenHttp() puts on the socket instead of fastify.listen(). Runs
// under Node, Deno and Bun:
//   systemd-socket-activate -l 8080 node --import tsx examples/fastify.ts
//   systemd-socket-activate -l 8080 deno run --allow-env --allow-net --allow-ffi examples/fastify.ts
//   systemd-socket-activate -l 8080 bun run examples/fastify.ts
//   curl localhost:8080/; curl -H 'content-type: application/json' -d '{"a":1}' localhost:8080/echo
//
// In a project of your own the import names the package ("socket-activate"
// from npm, "jsr:@socket-activate/socket-activate" from JSR); this file
// imports ../mod.ts so that it runs from a checkout, as examples/echo.ts does.
import { createServer, type Server } from "node:http";
import Fastify from "fastify";
import { listenHttp } from "../mod.ts";

let server!: Server;
const app = Fastify({
  serverFactory: (handler) => (server = createServer(handler)),
});
app.get("/", () => "hello from fastify\n");
app.post("/echo", (request) => ({ fastify: request.body }));

await app.ready();
const { activated } = await listenHttp(server, { fallback: { port: Number(process.env.PORT ?? 8080) } });
console.error(`fastify: listening (activated: ${activated})`);

// fastify.close() runs the onClose hooks and closes the server.
process.once("SIGTERM", () => app.close().then(() => process.exit(0)));

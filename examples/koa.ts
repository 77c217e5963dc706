// A Koa app on the socket systemd passes, or on port 8080 ($PORT) when
// started by hand: createServer(app.callback()), then listenHttp() instead
// of app.listen(). Runs under Node, Deno and Bun:
//   systemd-socket-activate -l 8080 node --import tsx examples/koa.ts
//   systemd-socket-activate -l 8080 deno run --allow-env --allow-net --allow-ffi examples/koa.ts
//   systemd-socket-activate -l 8080 bun run examples/koa.ts
//   curl localhost:8080/; curl -H 'content-type: application/json' -d '{"a":1}' localhost:8080/echo
//
// In a project of your own the import names the package ("socket-activate"
// from npm, "jsr:@socket-activate/socket-activate" from JSR); this file
// imports ../mod.ts so that it runs from a checkout, as examples/echo.ts does.
import { createServer } from "node:http";
import Koa from "koa";
import { listenHttp } from "../mod.ts";

const app = new Koa();
app.use(async (ctx) => {
  if (ctx.method === "GET" && ctx.path === "/") {
    ctx.body = "hello from koa\n";
  } else if (ctx.method === "POST" && ctx.path === "/echo") {
    let text = "";
    for await (const chunk of ctx.req) text += chunk;
    ctx.body = { koa: JSON.parse(text) };
  }
});

const server = createServer(app.callback());
const { activated } = await listenHttp(server, { fallback: { port: Number(process.env.PORT ?? 8080) } });
console.error(`koa: listening (activated: ${activated})`);

process.once("SIGTERM", () => server.close(() => process.exit(0)));

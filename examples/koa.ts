// A Koa app on the socket systemd passes, or on port 8080 (PORT) when started
// by hand. Runs under Node (through a loader such as tsx), Deno and Bun:
//   systemd-socket-activate -l 8080 node --import tsx examples/koa.ts
import { createServer } from "node:http";
import Koa from "koa";
import { listenHttp } from "socket-activate";

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

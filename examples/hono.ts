// A Hono app on the socket systemd passes, or on port 8080 ($PORT) when
// started by hand. A Hono app is a fetch handler, so serve() runs it as it
// is, with no adapter package. Runs under Node, Deno and Bun:
//   systemd-socket-activate -l 8080 node --import tsx examples/hono.ts
//   systemd-socket-activate -l 8080 deno run --allow-env --allow-net --allow-ffi examples/hono.ts
//   systemd-socket-activate -l 8080 bun run examples/hono.ts
//   curl localhost:8080/; curl -H 'content-type: application/json' -d '{"a":1}' localhost:8080/echo
//
// In a project of your own the import names the package ("socket-activate"
// from npm, "jsr:@socket-activate/socket-activate" from JSR); this file
// imports ../mod.ts so that it runs from a checkout, as examples/echo.ts does.
import { Hono } from "hono";
import { serve } from "../mod.ts";

const app = new Hono();
app.get("/", (c) => c.text("hello from hono\n"));
app.post("/echo", async (c) => c.json({ hono: await c.req.json() }));

const server = await serve({ fallback: { port: Number(process.env.PORT ?? 8080) } }, app.fetch);
console.error(`hono: listening (activated: ${server.activated})`);

// Stop accepting, let requests in flight finish (10 s at most), then exit.
process.once("SIGTERM", () => server.close().then(() => process.exit(0)));

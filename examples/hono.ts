// A Hono app on the socket systemd passes, or on port 8080 (PORT) when started
// by hand. Hono apps are fetch handlers, so serve() runs one as it is, with no
// adapter package. Runs under Node (through a loader such as tsx), Deno and Bun:
//   systemd-socket-activate -l 8080 deno run -A examples/hono.ts
import { Hono } from "hono";
import { serve } from "socket-activate";

const app = new Hono();
app.get("/", (c) => c.text("hello from hono\n"));
app.post("/echo", async (c) => c.json({ hono: await c.req.json() }));

const server = await serve({ fallback: { port: Number(process.env.PORT ?? 8080) } }, app.fetch);
console.error(`hono: listening (activated: ${server.activated})`);

// Stop accepting, let requests in flight finish (10 s at most), then exit.
process.once("SIGTERM", () => server.close().then(() => process.exit(0)));

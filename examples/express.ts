// An Express app on the socket systemd passes, or on port 8080 ($PORT) when
// started by hand: createServer(app), then listenHttp() instead of
// app.listen(). Runs under Node, Deno and Bun:
//   systemd-socket-activate -l 8080 node --import tsx examples/express.ts
//   systemd-socket-activate -l 8080 deno run --allow-env --allow-net --allow-ffi examples/express.ts
//   systemd-socket-activate -l 8080 bun run examples/express.ts
//   curl localhost:8080/; curl -H 'content-type: application/json' -d '{"a":1}' localhost:8080/echo
//
// In a project of your own the import names the package ("socket-activate"
// from npm, "jsr:@socket-activate/socket-activate" from JSR); this file
// imports ../mod.ts so that it runs from a checkout, as examples/echo.ts does.
import { createServer } from "node:http";
import express from "express";
import { listenHttp } from "../mod.ts";

const app = express();
app.use(express.json());
app.get("/", (_req, res) => {
  res.send("hello from express\n");
});
app.post("/echo", (req, res) => {
  res.json({ express: req.body });
});

const server = createServer(app);
const { activated } = await listenHttp(server, { fallback: { port: Number(process.env.PORT ?? 8080) } });
console.error(`express: listening (activated: ${activated})`);

// Let requests in flight finish, then exit: systemd starts us again on the next connection.
process.once("SIGTERM", () => server.close(() => process.exit(0)));

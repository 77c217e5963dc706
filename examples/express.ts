// An Express app on the socket systemd passes, or on port 8080 (PORT) when
// started by hand. Runs under Node (through a loader such as tsx), Deno and Bun:
//   systemd-socket-activate -l 8080 node --import tsx examples/express.ts
//   systemd-socket-activate -l 8080 deno run -A examples/express.ts
//   systemd-socket-activate -l 8080 bun run examples/express.ts
import { createServer } from "node:http";
import express from "express";
import { listenHttp } from "socket-activate";

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

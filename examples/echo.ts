// The echo server of "Systemd socket activation and Ruby" (ku1ik.com, 2012),
// as a user writes it with this package: it greets each connection with
// whether its socket came from systemd, then sends back what it receives with
// ASCII letters upper-cased, until the client closes. Not activated, it
// listens on port 8888 itself, as the article's does (or on $PORT).
//
//   systemd-socket-activate -l 8888 deno run --allow-env --allow-net --allow-ffi examples/echo.ts
//   systemd-socket-activate -l 8888 bun run examples/echo.ts
//   systemd-socket-activate -l 8888 node --import tsx examples/echo.ts
//   printf 'hello\n' | nc -N localhost 8888      # OHAI! systemd socket: true / HELLO
//
// In a project of your own the import names the package:
//   import { listen, listenFds } from "socket-activate";                      // npm (Node, Bun, Deno's npm:)
//   import { listen, listenFds } from "jsr:@socket-activate/socket-activate"; // JSR
// This file imports the JSR entry (mod.ts) by path instead, so that it runs
// from a checkout with nothing built and no network: the package's own name
// would resolve to the npm build (Node, Bun) or to the registry (Deno's jsr:).
import process from "node:process";
import { listen, listenFds } from "../mod.ts";

// The article's `ENV['LISTEN_PID'].to_i == $$`, with all of libsystemd's
// checks; listen() below serves the fd this found.
const fromSystemd = listenFds().length > 0;
const greeting = new TextEncoder().encode(`OHAI! systemd socket: ${fromSystemd}\n`);

const port = Number(process.env.PORT ?? 8888);
const server = await listen({ fallback: { port } }, async (conn) => {
  await conn.write(greeting);
  for await (const data of conn) {
    // Ruby's String#upcase on binary data: a-z only, every other byte kept.
    for (let i = 0; i < data.length; i++) if (data[i] >= 97 && data[i] <= 122) data[i] -= 32;
    await conn.write(data);
  }
  await conn.closeWrite();
});

// systemd stops a service with SIGTERM: finish the open connections (10 s at
// most) instead of cutting them off.
process.once("SIGTERM", () => server.close());

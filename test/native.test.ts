// socket-activate/node, /deno, /bun: the runtime's own server objects on the
// activated socket, through the real systemd-socket-activate.
import { test } from "node:test";
import assert from "node:assert/strict";
import { activate, exchange, fixtureCommand, freePort, RUNTIME } from "./_util.ts";

const text = (s: string) => new TextEncoder().encode(s);
const decode = (b: Uint8Array) => new TextDecoder().decode(b);

test("listenServer() puts a net.Server on the activated socket", async () => {
  const port = await freePort();
  const { run, conn } = await activate(["-l", `127.0.0.1:${port}`], [...fixtureCommand("native.ts"), "net"], {
    port,
  });
  // Not a bare half-close: Deno's node:net loses a write made in the tick that
  // accepts a connection whose FIN is already queued, and the native flavour
  // hands the caller's server the raw socket (listen() works around it).
  assert.equal(decode(await exchange(conn, text("x"))), "native net\n");
  await run.stderrMatch(new RegExp(`ready .*"activated":true,"fd":3.*"port":${port}`));
  run.child.kill("SIGKILL");
  await run.exited();
});

test("listenServer() serves an http.Server on the activated socket, or refuses where the runtime ignores the fd", async () => {
  const port = await freePort();
  const { run, conn } = await activate(
    ["-l", `127.0.0.1:${port}`],
    [...fixtureCommand("native.ts"), "http"],
    { port },
  );
  const reply = exchange(conn, text("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  reply.catch(() => {}); // Bun: the server exits, the connection resets
  if (RUNTIME === "bun") {
    // Bun's http.Server ignores { fd } and binds a random port (oven-sh/bun#22559):
    // the guard must refuse instead of serving elsewhere.
    assert.equal(await run.exited(), 1);
    assert.match(
      run.stderr(),
      /EADDRNOTAVAIL: The runtime was handed fd 3 "unknown" .* but listens on .*: it ignored the fd/,
    );
    return;
  }
  const got = decode(await reply);
  assert.match(got, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(got, /native http\n$/);
  run.child.kill("SIGKILL");
  await run.exited();
});

if (RUNTIME === "bun") {
  test("listenBun() puts Bun.listen on the activated socket", async () => {
    const port = await freePort();
    const { run, conn } = await activate(
      ["-l", `127.0.0.1:${port}`],
      [...fixtureCommand("native.ts"), "bun"],
      { port },
    );
    assert.equal(decode(await exchange(conn, new Uint8Array())), "native bun\n");
    await run.stderrMatch(/ready .*"activated":true,"fd":3/);
    run.child.kill("SIGKILL");
    await run.exited();
  });
}

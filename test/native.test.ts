// socket-activate/node, /deno, /bun: the runtime's own server objects on the
// activated socket, through the real systemd-socket-activate.
import { test } from "node:test";
import assert from "node:assert/strict";
import { activate, connect, exchange, fixtureCommand, freePort, refused, RUNTIME } from "./_util.ts";

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
      new RegExp(
        `EADDRNOTAVAIL: Bun's http\\.Server ignores \\{ fd \\} \\(oven-sh/bun#22559\\): handed fd 3 "unknown" ` +
          `\\(a tcp stream listening on 127\\.0\\.0\\.1:${port}\\), it listened on .* instead\\. That listener was ` +
          "closed and nothing was served: serve an http\\.Server in Bun with listenHttp\\(server\\)",
      ),
    );
    assert.doesNotMatch(run.stderr(), /please report/);
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

if (RUNTIME === "deno") {
  test("listenDeno() gives a Deno.Listener on the activated socket; closing it closes the socket", async () => {
    const port = await freePort();
    const { run, conn } = await activate(
      ["-l", `127.0.0.1:${port}`],
      [...fixtureCommand("native.ts"), "deno"],
      { port },
    );
    assert.equal(decode(await exchange(conn, new Uint8Array())), "native deno\n");
    await run.stderrMatch(
      /ready .*"activated":true,"fd":3,"name":"unknown","addr":\{"transport":"tcp","hostname":"127\.0\.0\.1","port":\d+\}/,
    );
    assert.equal(decode(await exchange(await connect({ port }), new Uint8Array())), "native deno\n");
    run.signal("SIGTERM");
    await run.stderrMatch(/accept loop ended/);
    // The inherited fd went with the listener: nothing accepts any more.
    assert.equal(await refused(port), true);
    run.child.kill("SIGKILL");
    await run.exited();
  });

  test("listenDeno() without --allow-ffi says what it needs", async () => {
    const port = await freePort();
    const deno = (globalThis as unknown as { Deno: { execPath(): string } }).Deno.execPath();
    const fixture = fixtureCommand("native.ts").at(-1)!;
    const { run } = await activate(
      ["-l", `127.0.0.1:${port}`],
      [deno, "run", "--allow-env", "--allow-net", "--allow-read", fixture, "deno"],
      { port },
    );
    assert.notEqual(await run.exited(), 0);
    assert.match(
      run.stderr(),
      /EPERM: Deno cannot put fd 3 "unknown" under a Deno\.Listener here: it needs --allow-ffi/,
    );
  });
}

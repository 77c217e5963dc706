// examples/: each runs as its comment says, in the runtime running this file,
// under the real systemd-socket-activate and on its own.
import { test } from "node:test";
import assert from "node:assert/strict";
import { activate, connect, exampleCommand, exchange, expectedEcho, freePort, start } from "./_util.ts";

test("examples/echo.ts greets as activated and echoes upper-cased under systemd-socket-activate", async () => {
  const port = await freePort();
  const { run, conn } = await activate(["-l", `127.0.0.1:${port}`], exampleCommand("echo.ts"), { port });
  const data = new TextEncoder().encode("hello, wörld \x00\xff\n");
  assert.deepEqual(await exchange(conn, data), expectedEcho(data, true));
  // A second connection to the same process: the listener stays up.
  const again = new TextEncoder().encode("again");
  assert.deepEqual(await exchange(await connect({ port }), again), expectedEcho(again, true));
  run.signal("SIGTERM");
  assert.equal(await run.exited(), 0, run.stderr());
  // Nothing on stderr but systemd-socket-activate's own lines: no warning
  // with the permissions the example's header gives.
  const own = run.stderr().split("\n").filter((l) =>
    l && !/^(Listening on|Communication attempt|Execing) /.test(l)
  );
  assert.deepEqual(own, []);
});

test("examples/echo.ts lets an open connection finish on SIGTERM, then exits 0", async () => {
  const port = await freePort();
  const { run, conn } = await activate(["-l", `127.0.0.1:${port}`], exampleCommand("echo.ts"), { port });
  const first = await new Promise<string>((resolve) => conn.once("data", (d) => resolve(String(d))));
  assert.equal(first, "OHAI! systemd socket: true\n");
  run.signal("SIGTERM");
  // Still served after the signal: the drain, not a cut.
  const rest = new Promise<string>((resolve) => {
    let s = "";
    conn.on("data", (d) => (s += d));
    conn.on("close", () => resolve(s));
  });
  await new Promise((r) => setTimeout(r, 100));
  conn.end("late\n");
  assert.equal(await rest, "LATE\n");
  assert.equal(await run.exited(), 0, run.stderr());
});

test("examples/echo.ts not activated listens on $PORT itself and greets false", async () => {
  const port = await freePort();
  const run = start(exampleCommand("echo.ts"), { PORT: String(port) });
  try {
    const data = new TextEncoder().encode("plain");
    assert.deepEqual(await exchange(await connect({ port }), data), expectedEcho(data, false));
  } finally {
    run.signal("SIGTERM");
  }
  assert.equal(await run.exited(), 0, run.stderr());
});

// examples/express.ts, hono.ts, fastify.ts, koa.ts: each runs as its header
// says, in the runtime running this file, under the real
// systemd-socket-activate (curl's first request is what starts it) and, not
// activated, on $PORT; SIGTERM ends it with exit code 0.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { exampleCommand, freePort, type Run, SSA, start } from "./_util.ts";

function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile("curl", ["-sS", "-m", "20", ...args], { timeout: 30000 }, (err, stdout, stderr) => {
      const code = err
        ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : -1)
        : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** GET / and POST /echo (JSON), both checked; then SIGTERM and exit code 0. */
async function check(run: Run, port: number, name: string): Promise<void> {
  try {
    const hello = await curl([`http://127.0.0.1:${port}/`]);
    assert.equal(hello.code, 0, hello.stderr + run.stderr());
    assert.equal(hello.stdout, `hello from ${name}\n`);
    const echo = await curl([
      "-H",
      "content-type: application/json",
      "--data-binary",
      '{"n":[1,2,"ü"]}',
      `http://127.0.0.1:${port}/echo`,
    ]);
    assert.equal(echo.code, 0, echo.stderr);
    assert.deepEqual(JSON.parse(echo.stdout), { [name]: { n: [1, 2, "ü"] } });
  } finally {
    run.signal("SIGTERM");
  }
  assert.equal(await run.exited(), 0, run.stderr());
}

for (const name of ["express", "hono", "fastify", "koa"]) {
  test(`examples/${name}.ts serves under systemd-socket-activate`, async () => {
    const port = await freePort();
    const run = start([SSA, "-l", `127.0.0.1:${port}`, ...exampleCommand(`${name}.ts`)]);
    // curl must not connect before systemd-socket-activate listens.
    await run.stderrMatch(/Listening on/);
    await check(run, port, name);
    await run.stderrMatch(new RegExp(`${name}: listening \\(activated: true\\)`));
  });

  test(`examples/${name}.ts not activated listens on $PORT`, async () => {
    const port = await freePort();
    const run = start(exampleCommand(`${name}.ts`), { PORT: String(port) });
    // Not activated, nothing holds the port before the app listens: wait for it.
    await run.stderrMatch(/listening/, 15000);
    await check(run, port, name);
    await run.stderrMatch(new RegExp(`${name}: listening \\(activated: false\\)`));
  });
}

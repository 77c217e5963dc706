// The unit files in README.md: systemd-analyze verify accepts them, and their
// ExecStart= (paths mapped onto this checkout) serves the echo under
// systemd-socket-activate and tells READY=1, in the runtime running this file.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { activate, exchange, expectedEcho, freePort, ROOT, RUNTIME, start, tempDir } from "./_util.ts";

const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
const blocks = [...readme.matchAll(/```ini\n# \/etc\/systemd\/system\/(\S+)(?: \((\w+)\))?\n([\s\S]*?)```/g)]
  .map(([, file, runtime, body]) => ({ file, runtime: runtime?.toLowerCase(), body }));

const g = globalThis as { Deno?: { execPath(): string } };
const runtimeBin = RUNTIME === "deno" ? g.Deno!.execPath() : process.execPath;

/** The unit text with the README's paths pointed at this checkout. */
function localize(body: string): string {
  return body
    .replaceAll(`/usr/bin/${RUNTIME} `, `${runtimeBin} `)
    .replaceAll("/srv/echo/node_modules/socket-activate/", `${ROOT}/`)
    .replaceAll("/srv/echo/", `${ROOT}/`);
}

test("README.md has a socket unit and a service unit for this runtime", () => {
  assert.ok(blocks.some((b) => b.file === "echo.socket"));
  assert.ok(blocks.some((b) => b.file === "echo.service" && b.runtime === RUNTIME), `no ${RUNTIME} unit`);
});

test("systemd-analyze verify accepts the README's units for this runtime", async () => {
  const dir = tempDir();
  for (const b of blocks.filter((b) => b.runtime === undefined || b.runtime === RUNTIME)) {
    fs.writeFileSync(path.join(dir, b.file), localize(b.body));
  }
  const r = start([
    "systemd-analyze",
    "verify",
    path.join(dir, "echo.socket"),
    path.join(dir, "echo.service"),
  ]);
  assert.equal(await r.exited(30000), 0, r.stderr());
  fs.rmSync(dir, { recursive: true });
});

test("the README's ExecStart= serves the echo and sends READY=1", async () => {
  const unit = localize(blocks.find((b) => b.file === "echo.service" && b.runtime === RUNTIME)!.body);
  const exec = /^ExecStart=(.*)$/m.exec(unit)![1].split(" ");
  const address = `@sa-unit-${process.pid}-${Date.now()}`;
  const recv = start(["/usr/bin/python3", path.join(ROOT, "test", "_notify_receiver.py"), address, "20"]);
  const deadline = Date.now() + 10000;
  while (!recv.stdout().startsWith("ready") && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
  }
  const port = await freePort();
  const { run, conn } = await activate(["-l", `127.0.0.1:${port}`, "-E", `NOTIFY_SOCKET=${address}`], exec, {
    port,
  });
  const data = new TextEncoder().encode("unit");
  assert.deepEqual(await exchange(conn, data), expectedEcho(data, true));
  while (!recv.stdout().includes("READY=1") && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
  }
  run.signal("SIGTERM");
  assert.equal(await run.exited(), 0, run.stderr());
  recv.child.kill("SIGKILL");
  assert.match(recv.stdout(), /"data": "READY=1(\\n)?"/);
  assert.doesNotMatch(run.stderr(), /socket-activate: cannot/, "no warning with the unit's permissions");
});

// openFifo() on a FIFO passed as fd 3 (opened read-write, as systemd's
// ListenFIFO= does), in the runtime running this file.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { fixtureCommand, start, tempDir } from "./_util.ts";

test("openFifo() streams what writers put into the FIFO", async () => {
  const dir = tempDir();
  const fifo = path.join(dir, "control");
  const mk = start(["mkfifo", fifo]);
  assert.equal(await mk.exited(), 0);
  const cmd = fixtureCommand("fifo.ts").map((a) => `'${a}'`).join(" ");
  const run = start([
    "/bin/sh",
    "-c",
    `LISTEN_FDS=1 LISTEN_FDNAMES=control LISTEN_PID=$$ exec ${cmd} 3<>'${fifo}'`,
  ]);
  await run.stderrMatch(/ready 3 control/);
  // Two writers one after the other: the stream goes on across them.
  fs.writeFileSync(fifo, "hello fifo\n");
  fs.writeFileSync(fifo, "second writer\nEND\n");
  assert.equal(await run.exited(), 0, run.stderr());
  assert.equal(run.stdout(), "hello fifo\nsecond writer\nEND\n");
  fs.rmSync(dir, { recursive: true });
});

test("openFifo() refuses an fd that is not a FIFO", async () => {
  const cmd = fixtureCommand("fifo.ts").map((a) => `'${a}'`).join(" ");
  const run = start([
    "/bin/sh",
    "-c",
    `LISTEN_FDS=1 LISTEN_FDNAMES=control LISTEN_PID=$$ exec ${cmd} 3</dev/null`,
  ]);
  assert.equal(await run.exited(), 1);
  assert.match(run.stderr(), /EPROTOTYPE: fd 3 "control" is a file \(\/dev\/null\), not a FIFO/);
});

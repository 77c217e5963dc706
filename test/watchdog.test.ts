// watchdogInterval() by sd_watchdog_enabled's rules, the keep-alive pings and
// idle exit, through systemd-socket-activate in the runtime running this file.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as path from "node:path";
import { ActivationError, watchdogInterval } from "../mod.ts";
import { activate, cliCommand, connect, exchange, freePort, ROOT, type Run, start } from "./_util.ts";

test("watchdogInterval() follows sd_watchdog_enabled", () => {
  assert.equal(watchdogInterval({ env: {}, pid: 7 }), undefined);
  assert.equal(watchdogInterval({ env: { WATCHDOG_USEC: "2000000" }, pid: 7 }), 2_000_000);
  assert.equal(watchdogInterval({ env: { WATCHDOG_USEC: " 0x10" }, pid: 7 }), 16);
  assert.equal(watchdogInterval({ env: { WATCHDOG_USEC: "500", WATCHDOG_PID: "7" }, pid: 7 }), 500);
  assert.equal(watchdogInterval({ env: { WATCHDOG_USEC: "500", WATCHDOG_PID: "8" }, pid: 7 }), undefined);
  for (
    const [v, code] of [["0", "EINVAL"], ["18446744073709551615", "EINVAL"], ["x", "EINVAL"], [
      "-5",
      "ERANGE",
    ]]
  ) {
    assert.throws(
      () => watchdogInterval({ env: { WATCHDOG_USEC: v }, pid: 7 }),
      (e) => e instanceof ActivationError && e.code === code && e.message.includes(`WATCHDOG_USEC="${v}"`),
      v,
    );
  }
  assert.throws(
    () => watchdogInterval({ env: { WATCHDOG_USEC: "5", WATCHDOG_PID: "0" }, pid: 7 }),
    (e) => e instanceof ActivationError && e.code === "ERANGE" && e.message.includes('WATCHDOG_PID="0"'),
  );
  const env: Record<string, string | undefined> = { WATCHDOG_USEC: "5", WATCHDOG_PID: "7" };
  watchdogInterval({ env, pid: 7, unsetEnv: true });
  assert.deepEqual(env, {});
});

async function receiver(address: string): Promise<{ run: Run; pings(): number[] }> {
  const t0 = Date.now();
  const run = start(["/usr/bin/python3", path.join(ROOT, "test", "_notify_receiver.py"), address, "20"]);
  while (!run.stdout().startsWith("ready\n") && Date.now() - t0 < 10000) {
    await new Promise((r) => setTimeout(r, 10));
  }
  const times: number[] = [];
  let seen = 0;
  run.child.stdout!.on("data", () => {
    const lines = run.stdout().split("\n").slice(1).filter(Boolean);
    for (; seen < lines.length; seen++) {
      if (JSON.parse(lines[seen]).data.startsWith("WATCHDOG=1")) times.push(Date.now());
    }
  });
  return { run, pings: () => times };
}

test("the echo server pings WATCHDOG=1 at about half of WATCHDOG_USEC, and stops after close", async () => {
  const address = `@sa-wd-${process.pid}-${Date.now()}`;
  const r = await receiver(address);
  const port = await freePort();
  const { run, conn } = await activate(
    ["-l", `127.0.0.1:${port}`, "-E", `NOTIFY_SOCKET=${address}`, "-E", "WATCHDOG_USEC=400000"],
    [...cliCommand(), "echo", "--quiet"],
    { port },
  );
  await exchange(conn, new TextEncoder().encode("x"));
  await new Promise((res) => setTimeout(res, 1300));
  run.signal("SIGTERM");
  assert.equal(await run.exited(), 0, run.stderr());
  const atExit = r.pings().length;
  await new Promise((res) => setTimeout(res, 600));
  r.run.child.kill("SIGKILL");
  const pings = r.pings();
  // 1.3 s at one ping per 200 ms, plus the one at start: 6 to 8.
  assert.ok(pings.length >= 5 && pings.length <= 9, `${pings.length} pings`);
  const gaps = pings.slice(1).map((t, i) => t - pings[i]);
  const median = gaps.sort((a, b) => a - b)[gaps.length >> 1];
  assert.ok(median > 120 && median < 320, `median gap ${median} ms`);
  assert.equal(pings.length, atExit, "no ping after the server closed");
});

test("no watchdog pings when WATCHDOG_PID names another process", async () => {
  const address = `@sa-wd2-${process.pid}-${Date.now()}`;
  const r = await receiver(address);
  const port = await freePort();
  const { run, conn } = await activate(
    [
      "-l",
      `127.0.0.1:${port}`,
      "-E",
      `NOTIFY_SOCKET=${address}`,
      "-E",
      "WATCHDOG_USEC=200000",
      "-E",
      "WATCHDOG_PID=1",
    ],
    [...cliCommand(), "echo", "--quiet"],
    { port },
  );
  await exchange(conn, new TextEncoder().encode("x"));
  await new Promise((res) => setTimeout(res, 600));
  run.signal("SIGTERM");
  assert.equal(await run.exited(), 0, run.stderr());
  r.run.child.kill("SIGKILL");
  assert.equal(r.pings().length, 0);
  assert.match(r.run.stdout(), /READY=1/);
});

test("--idle-exit: the activated server exits after the idle time, not before", async () => {
  const port = await freePort();
  const { run, conn } = await activate(["-l", `127.0.0.1:${port}`], [
    ...cliCommand(),
    "echo",
    "--idle-exit",
    "1",
  ], {
    port,
  });
  const t0 = Date.now();
  await exchange(conn, new TextEncoder().encode("x"));
  // A second connection 600 ms later restarts the idle clock.
  await new Promise((res) => setTimeout(res, 600));
  await exchange(await connect({ port }), new TextEncoder().encode("y"));
  const lastClose = Date.now();
  let exitedAt = 0;
  const status = await run.exited(5000).then((s) => {
    exitedAt = Date.now();
    return s;
  });
  assert.equal(status, 0, run.stderr());
  assert.ok(exitedAt - lastClose >= 900, `exited ${exitedAt - lastClose} ms after the last connection`);
  assert.ok(exitedAt - lastClose < 2500, `exited ${exitedAt - lastClose} ms after the last connection`);
  assert.ok(exitedAt - t0 >= 1500);
});

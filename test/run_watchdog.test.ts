// `socket-activate run --watchdog SEC` (issue 19, item 3): WATCHDOG_USEC for
// COMMAND, and SIGABRT (then, with --restart, a new COMMAND) for one whose
// WATCHDOG=1 stop. In the runtime running this file, as the launcher.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cliCommand, fixtureCommand, freePort, RUNTIME, start, until } from "./_util.ts";

const run = async (args: string[]) => {
  const port = await freePort();
  return start([
    ...cliCommand(),
    "run",
    "--now",
    "--restart",
    "--watchdog",
    "1",
    "-l",
    `127.0.0.1:${port}`,
    ...args,
  ]);
};
const starts = (stderr: string) => (stderr.match(/: started .* as PID \d+/g) ?? []).length;

test(
  "run --watchdog 1: the echo server, which pings, runs on; a COMMAND whose pings stop gets SIGABRT and, with " +
    "--restart, a successor; Node's launcher refuses it (exit 2)",
  async () => {
    if (RUNTIME === "node") {
      const r = await run(["--", "sleep", "5"]);
      assert.equal(await r.exited(), 2, r.stderr());
      assert.match(r.stderr(), /--watchdog: Node's launcher has no NOTIFY_SOCKET .* under Deno .* or Bun\n$/);
      return;
    }
    const pinging = await run(["--", ...cliCommand(), "echo", "--quiet"]);
    const silent = await run(["--", ...fixtureCommand("watchdog_stop.ts")]);
    try {
      await until(() => starts(silent.stderr()) >= 2, 30000, () => `a second COMMAND:\n${silent.stderr()}`);
      assert.match(silent.stderr(), /PID (\d+) sent no WATCHDOG=1 for 1 s: SIGABRT\n/);
      assert.match(silent.stderr(), /PID \d+ was killed by SIGABRT\n/);
      await pinging.stderrMatch(/echo: listening on/, 30000);
      // Past twice the interval, the echo server's pings (at half of it) kept it.
      await new Promise((r) => setTimeout(r, 2000));
      assert.equal(starts(pinging.stderr()), 1, pinging.stderr());
      assert.doesNotMatch(pinging.stderr(), /WATCHDOG/);
    } finally {
      pinging.signal("SIGTERM");
      silent.signal("SIGTERM");
      await Promise.all([pinging.exited(), silent.exited()]);
    }
  },
);

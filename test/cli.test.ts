import { test } from "node:test";
import assert from "node:assert/strict";
import { VERSION } from "../mod.ts";
import { cliCommand, NODE_FFI, RUNTIME, start } from "./_util.ts";

test("socket-activate --help lists the commands with examples", async () => {
  const r = start([...cliCommand(), "--help"]);
  assert.equal(await r.exited(), 0);
  assert.match(r.stdout(), /^socket-activate /);
  assert.match(r.stdout(), /inspect \[--json\]/);
  assert.match(r.stdout(), /Examples:/);
});

test("socket-activate --version prints the package version and the runtime", async () => {
  const r = start([...cliCommand(), "--version"]);
  assert.equal(await r.exited(), 0);
  assert.match(
    r.stdout(),
    new RegExp(`^socket-activate ${VERSION.replaceAll(".", "\\.")} \\((node|deno|bun) `),
  );
});

test("socket-activate with an unknown command prints usage and exits 2", async () => {
  const r = start([...cliCommand(), "frobnicate"]);
  assert.equal(await r.exited(), 2);
  assert.match(
    r.stderr(),
    /unknown command "frobnicate": the commands are echo, inspect, unit, run\nusage: socket-activate/,
  );
  assert.equal(r.stdout(), "");
});

test("socket-activate inspect with an unknown option exits 2", async () => {
  const r = start([...cliCommand(), "inspect", "--yaml"]);
  assert.equal(await r.exited(), 2);
  assert.match(r.stderr(), /unknown option "--yaml"/);
});

test("socket-activate inspect prints one line per fd for people, and what is wrong with it", async () => {
  const cli = cliCommand().map((a) => `'${a}'`).join(" ");
  const r = start([
    "/bin/sh",
    "-c",
    `LISTEN_FDS=1 LISTEN_FDNAMES=nul LISTEN_PID=$$ exec ${cli} inspect 3</dev/null`,
  ]);
  assert.equal(await r.exited(), 0, r.stderr());
  assert.equal(
    r.stdout(),
    'activated: 1 fd(s)\nfd 3 "nul": file /dev/null\n' +
      "  /dev/null, not a socket: the program that started this one passed no socket at this position\n",
  );
});

test("socket-activate inspect explains an fd that belongs to the runtime itself", async () => {
  const cli = cliCommand().map((a) => `'${a}'`).join(" ");
  // fd 4 was not passed: the runtime's own descriptors take the lowest free numbers.
  const r = start(["/bin/sh", "-c", `LISTEN_FDS=2 LISTEN_PID=$$ exec ${cli} inspect 3</dev/null`]);
  assert.equal(await r.exited(), 0, r.stderr());
  assert.match(
    r.stdout(),
    /fd 4 "unknown": other \(anon_inode:\[[a-z]+\]\)\n {2}this is not a passed socket but anon_inode/,
  );
});

test("socket-activate inspect says why the process is not activated", async () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{}, /^not activated: no LISTEN_PID or LISTEN_FDS in the environment/],
    [{ LISTEN_FDS: "1" }, /^not activated: LISTEN_FDS="1" but no LISTEN_PID/],
    [{ LISTEN_PID: "1" }, /^not activated: LISTEN_PID="1" but no LISTEN_FDS/],
    [
      { LISTEN_PID: "1", LISTEN_FDS: "1" },
      /^not activated: LISTEN_PID="1" names another process \(this one is \d+\)/,
    ],
  ];
  for (const [env, want] of cases) {
    const r = start([...cliCommand(), "inspect"], env);
    assert.equal(await r.exited(), 0, r.stderr());
    assert.match(r.stdout(), want);
  }
  // The right PID but another process's pidfd id; Node 22 and 24 cannot tell (no pidfd).
  const cli = cliCommand().join(" ");
  const r = start([
    "/bin/sh",
    "-c",
    `LISTEN_FDS=1 LISTEN_PID=$$ LISTEN_PIDFDID=1 exec ${cli} inspect 3</dev/null`,
  ]);
  assert.equal(await r.exited(), 0, r.stderr());
  assert.match(
    r.stdout(),
    RUNTIME === "node" && !NODE_FFI
      ? /^activated: 1 fd/
      : /^not activated: LISTEN_PIDFDID="1" names another process than this one \(its pidfd inode id is \d+, its PID \d+ is the one LISTEN_PID names\)/,
  );
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { VERSION } from "../mod.ts";
import { cliCommand, start } from "./_util.ts";

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
  assert.match(r.stderr(), /unknown command "frobnicate"\nusage: socket-activate/);
  assert.equal(r.stdout(), "");
});

test("socket-activate inspect with an unknown option exits 2", async () => {
  const r = start([...cliCommand(), "inspect", "--yaml"]);
  assert.equal(await r.exited(), 2);
  assert.match(r.stderr(), /unknown option "--yaml"/);
});

test("socket-activate inspect prints one line per fd for people", async () => {
  const r = start([
    "/bin/sh",
    "-c",
    `LISTEN_FDS=1 LISTEN_FDNAMES=nul LISTEN_PID=$$ exec ${
      cliCommand().map((a) => `'${a}'`).join(" ")
    } inspect 3</dev/null`,
  ]);
  assert.equal(await r.exited(), 0, r.stderr());
  assert.equal(r.stdout(), 'activated: 1 fd(s)\nfd 3 "nul": file /dev/null\n');
});

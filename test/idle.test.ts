// Memory per idle connection (issue 29): the RSS a server grows by for each
// open, quiet connection (one exchange, then nothing), the package's echo
// (listen(), the CLI) against the hand-written greeter of bench/ in the same
// runtime, both measured at once with the clients in this process. At most
// 1.5x the greeter and 2 KiB, the 2 KiB for the noise of a modest count on a
// loaded machine. V8's young generation is pinned to 1 MiB in both servers
// (Node and Deno): left alone it grows by about 20 MiB once the accept rate
// is high, a step at a count that varies from run to run, which made 1,000
// connections read 17 KiB or 11 KiB per connection for the same code.
// bench/idle.ts measures 10,000 connections with the defaults.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as path from "node:path";
import { cliCommand, ROOT, RUNTIME } from "./_util.ts";
import { idleCosts, type IdleServer } from "./_idle.ts";

const N = 1000, WARM = 200;
const g = globalThis as { Deno?: { execPath(): string } };
const PIN = "--max-semi-space-size=1";
const [bin, ...cli] = cliCommand();
const pkg: string[] = RUNTIME === "deno"
  ? [bin, "run", "-A", `--v8-flags=${PIN}`, ...cli.slice(2)]
  : RUNTIME === "bun"
  ? [bin, ...cli]
  : [bin, PIN, ...cli];
const greeter: string[] = RUNTIME === "deno"
  ? [g.Deno!.execPath(), "run", "-A", `--v8-flags=${PIN}`, path.join(ROOT, "bench/greeter-deno.mjs")]
  : RUNTIME === "bun"
  ? [process.execPath, "run", path.join(ROOT, "bench/greeter-bun.mjs")]
  : [process.execPath, PIN, path.join(ROOT, "bench/greeter-node.cjs")];

// At this count Node's and Bun's heaps grow in steps larger than what a
// connection costs (Node 26 read 12.5 to 15.9 KiB per connection at 1,000
// for 3.4 KiB at 10,000, pinned; Bun 2.6 to 3.3 KiB against a bound of about
// 3.3): there the figure is bench/idle.ts's, and this test would only flake.
const SKIP = RUNTIME === "deno"
  ? undefined
  : `${RUNTIME}'s heap steps exceed the per-connection cost at ${N} connections: measured in bench/idle.ts`;

test(`an idle listen() connection costs at most 1.5x the greeter's memory, and 2 KiB (${N} connections)`, {
  skip: SKIP,
}, async () => {
  const servers: IdleServer[] = [
    { kind: "echo", cmd: [...pkg, "--quiet"] },
    { kind: "echo", cmd: greeter },
  ];
  const [p, ref] = await idleCosts(servers, N, WARM, 200);
  const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;
  const mib = (c: { rssWarm: number; rssFull: number }) =>
    `${(c.rssWarm / 2 ** 20).toFixed(1)} -> ${(c.rssFull / 2 ** 20).toFixed(1)} MiB`;
  const what = `listen() ${kib(p.perConn)} (${mib(p)}), the greeter ${kib(ref.perConn)} (${
    mib(ref)
  }) per idle connection`;
  console.log(`${RUNTIME}: ${what}`);
  assert.ok(p.perConn <= 1.5 * ref.perConn + 2048, what);
});

// Memory per idle connection (issue 29): `node --import tsx bench/idle.ts`
// (also part of `npm run bench`). Markdown on stdout, progress on stderr.
//
// For each runtime, the package against the runtime's own server, each
// variant a fresh process, the variants interleaved round by round
// (A B C D A B C D ...):
//   listen()  the package's echo (the CLI, --quiet) on the activated fd
//   greeter   the hand-written fd-3 greeter of bench/greeter-* (node:net
//             listen({ fd: 3 }) in Node and Deno, Bun.listen({ fd: 3 }) in Bun)
//   serve()   the package's serve() on the activated fd (bench/http/server.mjs pkg-serve)
//   own HTTP  node:http listen({ fd: 3 }) in Node; Deno.serve and Bun.serve on
//             a port of their own (neither takes an fd)
// IDLE_CONNS connections (default 10,000) from this process, each with one
// exchange (greeting and one echoed line, or one keep-alive GET), then idle;
// the cost is the RSS slope from IDLE_WARM (default 1,000) to IDLE_CONNS
// connections, read a second after the last one (then until RSS holds still):
// see test/_idle.ts. The time to open and exchange on them is reported too.
// The fd limit here must allow IDLE_CONNS + a few in this process and each server.
// Knobs: IDLE_CONNS, IDLE_WARM, IDLE_ROUNDS (default 3), BENCH_RUNTIMES, IDLE_VARIANTS (names, comma-separated:
// a diagnostic; the others read "-").
import * as path from "node:path";
import { idleCost, type IdleServer } from "../test/_idle.ts";

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const N = Number(process.env.IDLE_CONNS ?? 10_000);
const WARM = Number(process.env.IDLE_WARM ?? Math.round(N / 10));
const ROUNDS = Number(process.env.IDLE_ROUNDS ?? 3);
const ONLY = (process.env.IDLE_VARIANTS ?? "").split(",").filter(Boolean);
const RUNTIMES = (process.env.BENCH_RUNTIMES ?? "node deno bun").split(/\s+/).filter(Boolean);
const BIN: Record<string, string> = {
  node: process.execPath,
  deno: path.join(ROOT, "node_modules/.bin/deno"),
  bun: path.join(ROOT, "node_modules/.bin/bun"),
};
const run: Record<string, (f: string) => string[]> = {
  node: (f) => [BIN.node, path.join(ROOT, f)],
  deno: (f) => [BIN.deno, "run", "-A", path.join(ROOT, f)],
  bun: (f) => [BIN.bun, "run", path.join(ROOT, f)],
};
const HTTP = "bench/http/server.mjs";
// Keep-alive connections stay open only while they send a request now and
// then: node:http closes one quiet for 5 s (keepAliveTimeout, the default
// serve() keeps), Bun.serve one quiet for 10 s (idleTimeout). Each http
// connection sends a GET once quiet for PING[runtime] ms, the package and
// the own server alike (the own node:http server's keepAliveTimeout is 60 s:
// the pings keep both open, whatever their timeouts). Deno's servers close
// no idle connection.
const PING: Record<string, number | undefined> = { node: 3000, bun: 6000, deno: undefined };
const VARIANTS: Record<string, Record<string, IdleServer>> = {
  node: {
    "listen()": { kind: "echo", cmd: [...run.node("dist/cli.cjs"), "--quiet"] },
    greeter: { kind: "echo", cmd: run.node("bench/greeter-node.cjs") },
    "serve()": { kind: "http", cmd: [...run.node(HTTP), "pkg-serve"], ping: PING.node },
    "own HTTP": { kind: "http", cmd: [...run.node(HTTP), "node-http-fd"], ping: PING.node },
  },
  deno: {
    "listen()": { kind: "echo", cmd: [...run.deno("mod.ts"), "--quiet"] },
    greeter: { kind: "echo", cmd: run.deno("bench/greeter-deno.mjs") },
    "serve()": { kind: "http", cmd: [...run.deno(HTTP), "pkg-serve"], ping: PING.deno },
    "own HTTP": { kind: "http", cmd: [...run.deno(HTTP), "deno-serve-port"], port: true, ping: PING.deno },
  },
  bun: {
    "listen()": { kind: "echo", cmd: [...run.bun("mod.ts"), "--quiet"] },
    greeter: { kind: "echo", cmd: run.bun("bench/greeter-bun.mjs") },
    "serve()": { kind: "http", cmd: [...run.bun(HTTP), "pkg-serve"], ping: PING.bun },
    "own HTTP": { kind: "http", cmd: [...run.bun(HTTP), "bun-serve-port"], port: true, ping: PING.bun },
  },
};

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const results: Record<string, { perConn: number[]; ms: number[] }> = {};
for (let r = 0; r < ROUNDS; r++) {
  for (const rt of RUNTIMES) {
    for (const [name, server] of Object.entries(VARIANTS[rt])) {
      if (ONLY.length > 0 && !ONLY.includes(name)) continue;
      const c = await idleCost(server, N, WARM);
      const k = `${rt} ${name}`;
      (results[k] ??= { perConn: [], ms: [] }).perConn.push(c.perConn);
      results[k].ms.push(c.acceptMs);
      process.stderr.write(
        `idle: round ${r + 1} ${k}: ${(c.perConn / 1024).toFixed(1)} KiB/conn, ` +
          `${(c.rssWarm / 2 ** 20).toFixed(0)} -> ${(c.rssFull / 2 ** 20).toFixed(0)} MiB, ${
            c.acceptMs.toFixed(0)
          } ms\n`,
      );
    }
  }
}
const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;
const out = [
  `## Memory per idle connection (${N} connections, slope from ${WARM}; median of ${ROUNDS} rounds, interleaved)`,
  "",
  `${new Date().toISOString()}`,
  "",
  "| runtime | listen() echo | greeter | ratio | serve() keep-alive | own HTTP server | ratio | time to open and exchange, listen() / greeter / serve() / own |",
  "|---|---|---|---|---|---|---|---|",
];
// A variant left out (IDLE_VARIANTS) reads "-".
for (const rt of RUNTIMES) {
  const m = (v: string) => results[`${rt} ${v}`] ? median(results[`${rt} ${v}`].perConn) : NaN;
  const t = (v: string) => results[`${rt} ${v}`] ? `${median(results[`${rt} ${v}`].ms).toFixed(0)}` : "-";
  const k = (v: string) => Number.isNaN(m(v)) ? "-" : kib(m(v));
  const ratio = (a: string, b: string) => Number.isNaN(m(a) / m(b)) ? "-" : (m(a) / m(b)).toFixed(2);
  out.push(
    `| ${rt} | ${k("listen()")} | ${k("greeter")} | ${ratio("listen()", "greeter")} | ` +
      `${k("serve()")} | ${k("own HTTP")} | ${ratio("serve()", "own HTTP")} | ` +
      `${t("listen()")} / ${t("greeter")} / ${t("serve()")} / ${t("own HTTP")} ms |`,
  );
}
console.log(out.join("\n"));
process.exit(0);

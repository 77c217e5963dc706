#!/usr/bin/env bash
# socket-activate benchmark: `bash bench/run.sh` (or `npm run bench`); prints
# markdown tables on stdout, progress on stderr; about 12 minutes on 2 cores (bounded at 330 s + 120 s
# + 480 s + 300 s).
#
# What is measured, each runtime (Node, Deno, Bun) side by side in ONE run,
# the variants interleaved (A B A B ...) because the machine is noisy; medians
# and ratios are reported, plus a spread table (min/p25/median/p75/max):
#
# 1. Start-up under /usr/bin/systemd-socket-activate: the time from connect()
#    to the first byte of the greeting, cold (the program is exec'd because of
#    that connection). A fresh systemd-socket-activate and a fresh kernel-chosen
#    port (bind :0, close, never reused) per sample; >= 15 samples each, after
#    one unmeasured warm-up per variant:
#      (a) the package's echo server with --quiet (node dist/cli.cjs,
#          deno run -A mod.ts, bun run mod.ts)
#      (b) a minimal hand-written fd-3 greeter in the same runtime
#          (bench/greeter-*: node:net listen({fd:3}) in Node and Deno,
#          Bun.listen({fd:3}) in Bun), same greeting, same upper-casing echo;
#          Node's is CommonJS like the bin (Node 20 starts a CommonJS main
#          about 3 ms sooner than an ES module one)
#      (c) the greeter (b) after loading the package and using none of it
#          (bench/imported*: require("socket-activate") in Node, mod.ts in
#          Deno and Bun): (c) - (b) is what loading the package's code costs
#          before any of it runs.
#    Every greeting is checked, and one line is echoed back upper-cased.
# 2. Echo throughput: bench/load.mjs (Node, the same client for all) opens 8
#    connections, each sends 32 MiB of lower-case ASCII in 64 KiB writes while
#    reading back concurrently, checking the byte count and sampled bytes;
#    MiB/s = echoed payload / (first write -> last byte back). Compared:
#      (a) the package's echo server activated by systemd-socket-activate on a
#          TCP port (exec'd by a first greeting connection, then a 1 MiB warm-up)
#      (b) the runtime's own fastest echo server on an ordinary port
#          (bench/echo-*.mjs: net 'data' handler / Deno.listen read-write loop /
#          Bun.listen data handler with partial writes), same greeting and
#          warm-up.
#    (a) then (b) in even rounds, (b) then (a) in odd ones, >= 3 rounds
#    (default 11); besides the ratio of medians, the median (p25-p75) of
#    the per-round ratios (a)/(b), which cancels drift between rounds.
#
# 3. The footprint (bench/footprint.mjs, which explains it): installed size of
#    the packed tarball, the size of each built entry and what importing it
#    loads, and the time to import the package in each runtime. Alone:
#    `node bench/footprint.mjs` (about 30 s).
#
# 4. HTTP in Node (bench/http-node.mjs, which explains it): serve() on an
#    activated fd (a plain Response, and FastResponse) against node:http, srvx
#    and @hono/node-server, a text and a JSON POST echo case, under each
#    supported Node line: requests/s and CPU time per request; needs wrk
#    (skipped with a note without it); about 6 minutes. Alone: `node
#    bench/http-node.mjs`. The bridge in Deno and Bun, and the import cost of
#    srvx/node: `node bench/http-bridge.mjs` (about 4 minutes).
#
# 5. HTTP requests/s of serve() (bench/http.mjs, which explains it; needs wrk
#    and taskset): serve() on an activated socket (its fast path, and forced
#    onto node:http with SOCKET_ACTIVATE_HTTP_FAST=0) against the runtime's
#    fastest server on an ordinary port (node:http, Deno.serve, Bun.serve),
#    interleaved, as ratios; about 3 minutes. Every other alternative
#    measured: `node bench/http.mjs` alone (about 6 minutes).
#
# 6. Memory per idle connection (bench/idle.ts, which explains it): RSS growth
#    per connection at 10,000 idle connections, listen() against the greeter
#    and serve() against the runtime's own HTTP server; about 6 minutes.
# 7. Latency during reloads (bench/reload.mjs, which explains it): 20 SIGHUPs
#    to `socket-activate run` under a steady client load, --reload=stop-first
#    against --reload=overlap and --workers 3, each runtime's launcher; about 7 minutes.
#
# 7. WebSocket echo messages/s (bench/ws.mjs): serve() with upgradeWebSocket()
#    on an activated fd against each runtime's own WebSocket server on a port
#    (`ws` on node:http, Deno.serve, Bun.serve), interleaved; 1 KiB messages
#    over 64 sockets; about 2 minutes.
#
# 8. notify() per message (bench/notify.mjs): Node 26 over node:ffi against
#    Deno and Bun (and Node 22's systemd-notify, for scale), interleaved;
#    about 1 minute.
#
# Every process is started by the driver (bench/bench.mjs) and stopped by PID
# (SIGTERM, bounded wait, SIGKILL); systemd-socket-activate execs the program,
# so it is the same PID. Every wait is bounded; a server that fails to start
# ends the run with its stderr. Knobs (environment): BENCH_STARTUP_SAMPLES=41,
# BENCH_ROUNDS=11, BENCH_MIB=32, BENCH_CONNS=8, BENCH_RUNTIMES="node deno bun".
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in /usr/bin/systemd-socket-activate node_modules/.bin/deno node_modules/.bin/bun; do
  [ -x "$tool" ] || { echo "bench: $tool is missing" >&2; exit 1; }
done
if [ ! -f dist/cli.cjs ]; then
  echo "bench: dist/ is missing, building it" >&2
  timeout 120 node_modules/.bin/tsup --silent >/dev/null || { echo "bench: build failed" >&2; exit 1; }
fi

start=$(date +%s)
status=0
# Part 1's Node is the newest supported line (node:ffi); BENCH_NODE=... picks another.
BENCH_NODE=${BENCH_NODE:-node_modules/node26/bin/node} timeout -k 10 330 node bench/bench.mjs || status=$?
[ "$status" -ne 124 ] || echo "bench: timed out after 330 s" >&2
if [ "$status" -eq 0 ]; then
  echo
  timeout -k 10 120 node bench/footprint.mjs || status=$?
  [ "$status" -ne 124 ] || echo "bench: footprint timed out after 120 s" >&2
fi
if [ "$status" -eq 0 ]; then
  echo
  if command -v wrk >/dev/null; then
    timeout -k 10 480 node bench/http-node.mjs || status=$?
    [ "$status" -ne 124 ] || echo "bench: http-node timed out after 480 s" >&2
  else
    echo "bench: wrk is missing (Debian package wrk): the HTTP bridge benchmark is skipped" >&2
  fi
fi
if [ "$status" -eq 0 ]; then
  if [ -x /usr/bin/wrk ] && [ -x /usr/bin/taskset ]; then
    echo
    HTTP_VARIANTS="${HTTP_VARIANTS:-pkg-serve pkg-serve-supported}" timeout -k 10 300 node bench/http.mjs || status=$?
    [ "$status" -ne 124 ] || echo "bench: http timed out after 300 s" >&2
  else
    echo "bench: wrk or taskset is missing (Debian package wrk): the HTTP serve() benchmark is skipped" >&2
  fi
fi
if [ "$status" -eq 0 ]; then
  echo
  timeout -k 10 300 node bench/ws.mjs || status=$?
  [ "$status" -ne 124 ] || echo "bench: ws timed out after 300 s" >&2
fi
if [ "$status" -eq 0 ]; then
  echo
  timeout -k 10 120 node bench/notify.mjs || status=$?
  [ "$status" -ne 124 ] || echo "bench: notify timed out after 120 s" >&2
fi
if [ "$status" -eq 0 ]; then
  echo
  timeout -k 10 600 node --import tsx bench/idle.ts || status=$?
  [ "$status" -ne 124 ] || echo "bench: idle timed out after 600 s" >&2
fi
if [ "$status" -eq 0 ]; then
  echo
  timeout -k 10 720 node bench/reload.mjs || status=$?
  [ "$status" -ne 124 ] || echo "bench: reload timed out after 720 s" >&2
fi
echo "bench: took $(( $(date +%s) - start )) s" >&2
exit "$status"

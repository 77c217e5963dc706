// listenFds() against the real libsystemd (Debian python3-systemd): the same
// environments, the same answers, in every runtime.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { ActivationError, listenFds } from "../mod.ts";
import { type Case, generated, handPicked, renderPid } from "./_cases.ts";
import { ROOT } from "./_util.ts";

type Outcome = { n: number; names: string[] } | { error: string };

/** How many fds from 3 upwards are open in this process right now. */
function openRun(): number {
  // lstat, not readdir: listing /proc/self/fd would open an fd of its own.
  let k = 0;
  while (fs.existsSync(`/proc/self/fd/${3 + k}`)) k++;
  return k;
}

function oracle(cases: Case[], open: number): Outcome[] {
  const r = spawnSync("/usr/bin/python3", [path.join(ROOT, "test", "_oracle.py")], {
    input: JSON.stringify({ open, cases }),
    maxBuffer: 64 * 1024 * 1024,
  });
  assert.equal(r.status, 0, `oracle failed: ${r.stderr}`);
  return JSON.parse(String(r.stdout));
}

const PID = 4242;

function ours(c: Case): Outcome {
  const env: Record<string, string> = { ...c };
  if (env.LISTEN_PID !== undefined) env.LISTEN_PID = renderPid(env.LISTEN_PID, PID);
  try {
    const fds = listenFds({ env, pid: PID, unsetEnv: false });
    return { n: fds.length, names: fds.map((f) => f.name) };
  } catch (e) {
    if (e instanceof ActivationError) return { error: e.code };
    throw e;
  }
}

function differential(cases: Case[]) {
  // The oracle gets as many open fds from 3 up as this process has, so the
  // EBADF answers depend on the same thing on both sides.
  let open = openRun();
  let expected = oracle(cases, open);
  for (let attempt = 0; attempt < 3 && openRun() !== open; attempt++) {
    open = openRun();
    expected = oracle(cases, open);
  }
  const got = cases.map(ours); // synchronous: no fd opens in between
  assert.equal(openRun(), open, "this process's open fds changed during the comparison");
  const diverged = cases
    .map((c, i) => ({ env: c, libsystemd: expected[i], ours: got[i] }))
    .filter((d) => JSON.stringify(d.libsystemd) !== JSON.stringify(d.ours));
  assert.deepEqual(diverged.slice(0, 10), [], `${diverged.length} of ${cases.length} cases diverge`);
  return { open, kinds: new Set(expected.map((e) => ("error" in e ? e.error : e.n > 0 ? "fds" : "none"))) };
}

test("listenFds() agrees with libsystemd on the hand-picked cases", () => {
  const { kinds } = differential(handPicked());
  // The list must exercise every outcome, or it proves little.
  for (const k of ["EINVAL", "ERANGE", "EBADF", "fds", "none"]) assert.ok(kinds.has(k), `no case gave ${k}`);
});

test("listenFds() agrees with libsystemd on 2,400 generated environments", () => {
  const cases = generated(2400);
  assert.equal(cases.length, 2400);
  const { kinds } = differential(cases);
  for (const k of ["EINVAL", "ERANGE", "EBADF", "fds", "none"]) assert.ok(kinds.has(k), `no case gave ${k}`);
});

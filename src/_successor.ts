// The successor's half of a reload with no gap (src/_reload.ts): a process
// that a reload started tells the process that started it, with SIGUSR2,
// once it is ready, and leaves READY=1 to it (the old process sends
// MAINPID= and READY=1 together, from the main PID, which NotifyAccess=main
// accepts). Apart from src/_reload.ts so that notify() and the signals reach
// it without loading the reload itself.
import { getRuntime } from "./_runtime.ts";

/**
 * In a successor's environment: `PID:ready` (its parent sent READY=1 itself,
 * so the successor is ready at its own READY=1) or `PID:listening` (a
 * program that never notifies: ready once it serves an activated socket).
 */
export const RELOAD_ENV = "SOCKET_ACTIVATE_RELOAD";

let parent: { pid: number; on: "ready" | "listening" } | null | undefined;
let readySent = false;

/** Whether this process has sent READY=1: then its successor must, too. */
export function hasSentReady(): boolean {
  return readySent;
}

/** Puts back what hasSentReady() said, after a READY=1 of the package's own (a failed reload's). */
export function setSentReady(sent: boolean): void {
  readySent = sent;
}

function take(): typeof parent {
  if (parent !== undefined) return parent;
  const rt = getRuntime();
  parent = null;
  let value: string | undefined;
  try {
    value = rt.getEnv(RELOAD_ENV);
  } catch { /* Deno with a scoped --allow-env: no reload started this process */ }
  if (value === undefined) return parent;
  rt.deleteEnv(RELOAD_ENV); // not for the program's own children
  const m = /^(\d+):(ready|listening)$/.exec(value);
  // Not getppid(): the successor is the service manager's child (src/_reload.ts).
  if (m && Number(m[1]) > 1 && Number(m[1]) !== rt.pid()) {
    parent = { pid: Number(m[1]), on: m[2] as "ready" | "listening" };
  }
  return parent;
}

/**
 * Tells the parent that started this process in a reload that `what` has
 * happened, when that is what it waits for; true when it was told (the
 * parent then sends READY=1 in this process's stead).
 */
export function tellParent(what: "ready" | "listening"): boolean {
  if (what === "ready") readySent = true;
  const p = take();
  if (!p || p.on !== what) return false;
  parent = null;
  getRuntime().kill(p.pid, "SIGUSR2");
  return true;
}

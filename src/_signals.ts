// The default stop: SIGTERM (systemd's stop and restart) and SIGINT (Ctrl-C)
// for every server the package serves in this process, one drain for all.
// A program with a handler of its own for a signal keeps it (the runtime
// shim tells, when the signal arrives: Runtime.onDefaultSignal); `signals:
// false` on a server keeps the package away from every signal. SIGHUP
// reloads with no gap (src/_reload.ts) where a service manager can take the
// handover: activated, with NOTIFY_SOCKET, and not under `socket-activate
// run`, whose launcher reloads COMMAND itself; elsewhere it is left alone.
import { remembered } from "./listen_fds.ts";
import { getRuntime } from "./_runtime.ts";
import { notify } from "./notify.ts";
import { tellParent } from "./_successor.ts";

/** A server as the drain sees it. */
export interface Drainable {
  /** What it has in flight now: open connections, requests, handlers. */
  busy(): number;
  /** Stops accepting, lets what is in flight finish within the drain timeout, closes. */
  close(): Promise<void>;
  /** Its drain timeout, in milliseconds. */
  readonly drainTimeout: number;
}

const SIGNO = { SIGINT: 2, SIGTERM: 15 } as const;
type Sig = keyof typeof SIGNO;

/** How long a drain goes before it says so, in milliseconds. */
const SAY_AFTER = 200;

const servers = new Set<Drainable>();
let offs: (() => void)[] | undefined;
let stopping: Sig | "SIGHUP" | undefined;

/** Set by `socket-activate run` in COMMAND's environment: its launcher reloads. */
export const RUN_ENV = "SOCKET_ACTIVATE_RUN";

/**
 * Whether SIGHUP may reload this process: it was activated (its successor
 * gets the same fds), a service manager listens (it must learn the new
 * MAINPID=), and no `socket-activate run` launcher does the reload instead.
 */
export function mayReload(): boolean {
  const rt = getRuntime();
  const r = remembered();
  if (!r || !("fds" in r) || r.fds.length === 0) return false;
  try {
    return (rt.getEnv("NOTIFY_SOCKET") ?? "") !== "" && rt.getEnv(RUN_ENV) === undefined;
  } catch {
    return false; // Deno with a scoped --allow-env
  }
}

/**
 * Puts `server` under the default stop (unless `signals` is false); returns
 * what takes it out again, called once the server closed: the last one out
 * gives the signals back to the runtime's defaults.
 */
export function guard(server: Drainable, signals: boolean | undefined): () => void {
  // A successor that never notifies is ready once it serves (src/_successor.ts).
  tellParent("listening");
  if (signals === false) return () => {};
  servers.add(server);
  if (offs === undefined) {
    const rt = getRuntime();
    offs = (Object.keys(SIGNO) as Sig[]).map((sig) => rt.onDefaultSignal(sig, () => stop(sig)));
    if (mayReload()) {
      offs.push(rt.onDefaultSignal("SIGHUP", () => {
        if (stopping !== undefined) return;
        void import("./_reload.ts").then((m) => m.reload((pid) => stop("SIGHUP", pid)));
      }));
    }
  }
  return () => {
    servers.delete(server);
    // Once a drain has started the handlers stay: a second signal ends at once.
    if (servers.size > 0 || stopping !== undefined || offs === undefined) return;
    for (const off of offs) off();
    offs = undefined;
  };
}

/** Throws a TypeError for a `signals` option that is not a boolean, before anything listens. */
export function checkSignals(signals: unknown, where: string): void {
  if (signals !== undefined && typeof signals !== "boolean") {
    throw new TypeError(
      `Cannot serve with ${where}.signals = ${
        JSON.stringify(signals) ?? String(signals)
      }: give true or false`,
    );
  }
}

/**
 * The drain: on SIGTERM or SIGINT, or after a reload handed the service over
 * to `successor` (SIGHUP), which tells the service manager nothing more (the
 * successor is the main process now) and exits once every server closed.
 */
function stop(sig: Sig | "SIGHUP", successor?: number): void {
  const rt = getRuntime();
  const say = (text: string) => rt.write("stderr", `socket-activate: ${text}\n`);
  if (sig === "SIGHUP") {
    if (stopping !== undefined) return;
  } else if (stopping !== undefined) {
    say(`${sig} while stopping after ${stopping}: exiting now`);
    rt.exit(128 + SIGNO[sig]);
  }
  stopping = sig;
  const started = Date.now();
  const all = [...servers];
  const busy = all.reduce((n, s) => n + s.busy(), 0);
  const timeout = Math.max(...all.map((s) => s.drainTimeout));
  // Said only of a drain that takes a while: a quick stop stays quiet.
  let said = false;
  const slow = setTimeout(() => {
    said = true;
    const left = all.reduce((n, s) => n + s.busy(), 0);
    const what = successor === undefined ? "stopping" : `handed over to PID ${successor}, draining`;
    say(`${sig}: ${what}: ${left} connection(s) still in flight, given up to ${timeout} ms`);
  }, SAY_AFTER);
  rt.unrefTimer(slow);
  // A service cannot see its TimeoutStopSec=: with work in flight it asks
  // for the drain's time (and a second, to exit), counted from now.
  const extend = busy > 0 ? `\nEXTEND_TIMEOUT_USEC=${(timeout + 1000) * 1000}` : "";
  const notified = successor !== undefined || (rt.getEnv("NOTIFY_SOCKET") ?? "") === ""
    ? Promise.resolve()
    : notify(`STOPPING=1${extend}`).then(
      () => {},
      (e) => say(`cannot tell the service manager STOPPING=1: ${(e as Error)?.message ?? e}`),
    );
  // The servers' own drains close what is left at the timeout; what else
  // holds the process (a timer, a database pool of the program's) is not
  // waited for beyond it. Unref'd: a process that ends on its own never waits.
  const deadline = setTimeout(() => {
    say(`still running ${Date.now() - started} ms after ${sig}: exiting`);
    rt.exit(0);
  }, timeout + 1000);
  rt.unrefTimer(deadline);
  Promise.all(all.map((s) => s.close().catch(() => {}))).then(async () => {
    clearTimeout(slow);
    await notified;
    if (said) say(`stopped: every server closed in ${Date.now() - started} ms`);
    // The successor serves: what else this process holds (a timer, a pool) has no use.
    if (successor !== undefined) rt.exit(0);
  });
}

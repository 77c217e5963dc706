// A reload with no gap under a service manager: on SIGHUP (ExecReload=kill
// -HUP $MAINPID, or Type=notify-reload) the process starts a successor of
// itself on the same fds, waits until it is ready, hands it the service
// (MAINPID=) and then drains and exits. This is unicorn's and gunicorn's
// re-exec upgrade: the listening sockets never close, so no connection waits
// for the old process's drain. Loaded on the first SIGHUP only.
//
// Under `socket-activate run` the launcher reloads (it starts the new COMMAND
// itself), so a COMMAND there never does this (src/_signals.ts).
import { remembered } from "./listen_fds.ts";
import { getRuntime } from "./_runtime.ts";
import { notify } from "./notify.ts";
import { hasSentReady, RELOAD_ENV, setSentReady } from "./_successor.ts";

/**
 * How long a successor may take to be ready, in milliseconds: systemd's
 * default TimeoutStartSec=, or SOCKET_ACTIVATE_RELOAD_TIMEOUT seconds.
 */
function readyTimeoutMs(): number {
  const sec = Number(getRuntime().getEnv("SOCKET_ACTIVATE_RELOAD_TIMEOUT") ?? "90");
  return sec > 0 ? sec * 1000 : 90_000;
}
// The successor's parent must be the service manager, not this process:
// systemd (252 here) takes a MAINPID= that is not its own child as "alien",
// and on a stop does not wait for an alien main process where its cgroup
// events are unreliable (the legacy or hybrid hierarchy in a container) but
// SIGKILLs it at once. So a sh starts the successor in the background and
// stops itself; this process reads the successor's PID from /proc and kills
// the sh, and the successor is reparented to PID 1 (or the user manager, a
// subreaper). The inner sh sets LISTEN_PID to its own PID and then becomes
// the program: no runtime can set a variable between fork and exec, and exec
// keeps the PID.
const EXEC_SH = 'LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"';
const DETACH_SH = `/bin/sh -c '${EXEC_SH}' "$@" & kill -STOP $$`;

/** A process's state letter from /proc/PID/stat (R, S, T, Z, ...); undefined once it is gone. */
function procState(pid: number): string | undefined {
  const stat = getRuntime().readText(`/proc/${pid}/stat`);
  return stat === undefined ? undefined : /\) (\S)/.exec(stat)?.[1];
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

let busy = false;

/** This process's argv as the kernel has it: the runtime, its flags, the script and its arguments. */
function commandLine(): string[] | undefined {
  const rt = getRuntime();
  const text = rt.readText("/proc/self/cmdline");
  if (text === undefined) return undefined;
  // readText gives Latin-1: back to bytes, then UTF-8.
  const bytes = Uint8Array.from(text, (c) => c.charCodeAt(0));
  const argv = new TextDecoder().decode(bytes).split("\0");
  if (argv[argv.length - 1] === "") argv.pop();
  return argv.length > 0 ? argv : undefined;
}

/**
 * Reloads: starts the successor, and once it is ready hands over and calls
 * `drain` (which stops accepting, lets open connections finish and exits);
 * if it fails, this process keeps serving and says so (STATUS=, stderr).
 */
export async function reload(drain: (successor: number) => void): Promise<void> {
  const rt = getRuntime();
  const say = (text: string) => rt.write("stderr", `socket-activate: ${text}\n`);
  const tell = (state: string) =>
    notify(state).catch((e) =>
      say(`cannot tell the service manager ${state.split("\n")[0]}: ${e?.message ?? e}`)
    );
  if (busy) return say("SIGHUP: a reload is under way already; this one is ignored");
  busy = true;
  const pid = rt.pid();
  await tell(`RELOADING=1\nMONOTONIC_USEC=${rt.monotonicUsec()}\nSTATUS=Reloading: starting a successor`);
  // The program's own READY=1 decides what the next successor is waited for, not this one's.
  const programReady = hasSentReady();
  const failed = async (why: string) => {
    busy = false;
    say(`SIGHUP: reload failed: ${why}; PID ${pid} keeps serving`);
    await tell(`READY=1\nSTATUS=Reload failed: ${why}; PID ${pid} keeps serving`);
    setSentReady(programReady);
  };
  const r = remembered();
  const fds = r && "fds" in r ? r.fds : [];
  const argv = commandLine();
  if (fds.length === 0 || argv === undefined) {
    return failed(fds.length === 0 ? "this process has no activated fds" : "cannot read /proc/self/cmdline");
  }
  let l: Awaited<ReturnType<typeof rt.launcher>>;
  let env: Record<string, string>;
  try {
    l = await rt.launcher();
    env = l.environment();
  } catch (e) {
    return failed(`${(e as Error)?.message ?? e}`);
  }
  // The successor's own: LISTEN_PID from the sh, no LISTEN_PIDFDID (this
  // process's), no WATCHDOG_PID (this PID: the successor would never ping).
  for (const k of ["LISTEN_PID", "LISTEN_PIDFDID", "WATCHDOG_PID"]) delete env[k];
  env.LISTEN_FDS = String(fds.length);
  env.LISTEN_FDNAMES = fds.map((f) => f.name).join(":");
  env[RELOAD_ENV] = `${pid}:${hasSentReady() ? "ready" : "listening"}`;
  let isReady!: () => void;
  const ready = new Promise<"ready">((res) => (isReady = () => res("ready")));
  const off = l.onSignal("SIGUSR2", () => isReady());
  let successor: number;
  try {
    successor = await startDetached(l, argv, env, fds.map((f) => f.fd));
  } catch (e) {
    off();
    return failed(`cannot start a successor: ${(e as Error)?.message ?? e}`);
  }
  say(`SIGHUP: reloading: started PID ${successor} on fds ${fds.map((f) => f.fd).join(", ")}`);
  // Not this process's child: its exit shows in /proc (a zombie, then gone).
  let stopPolling = false;
  const exited = (async () => {
    while (!stopPolling) {
      const st = procState(successor);
      if (st === undefined || st === "Z" || st === "X") return "exited" as const;
      await pause(20);
    }
    return "exited" as const;
  })();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = readyTimeoutMs();
  const late = new Promise<"late">((res) => (timer = setTimeout(() => res("late"), timeout)));
  const outcome = await Promise.race([ready, exited, late]);
  clearTimeout(timer);
  stopPolling = true;
  off();
  if (outcome === "ready") {
    await tell(`MAINPID=${successor}\nREADY=1`);
    say(`SIGHUP: reloaded: PID ${successor} is ready and serves; PID ${pid} drains and exits`);
    drain(successor);
    return;
  }
  if (outcome === "late") l.kill(successor, "SIGKILL");
  await failed(
    outcome === "late"
      ? `the successor, PID ${successor}, was not ready after ${timeout / 1000} s (killed)`
      : `the successor, PID ${successor}, exited before it was ready (its status is in the service's log)`,
  );
}

/** Starts argv on `fds` as a child of the service manager (DETACH_SH); its PID. */
async function startDetached(
  l: Awaited<ReturnType<ReturnType<typeof getRuntime>["launcher"]>>,
  argv: string[],
  env: Record<string, string>,
  fds: number[],
): Promise<number> {
  const rt = getRuntime();
  const sh = l.spawn(["/bin/sh", "-c", DETACH_SH, "sh", ...argv], env, fds);
  let gone = false;
  void sh.exited.then(() => (gone = true));
  try {
    for (let i = 0; i < 1000 && !gone; i++) {
      if (procState(sh.pid) === "T") {
        const children = rt.readText(`/proc/${sh.pid}/task/${sh.pid}/children`)?.trim().split(" ");
        const pid = Number(children?.[0]);
        if (!(pid > 0)) throw new Error(`/proc/${sh.pid}/task/${sh.pid}/children names no successor`);
        return pid;
      }
      await pause(5);
    }
    throw new Error(
      gone ? "/bin/sh exited before it started the program" : "/bin/sh did not start the program in 5 s",
    );
  } finally {
    l.kill(sh.pid, "SIGKILL");
    await sh.exited;
  }
}

import { ActivationError } from "./errors.ts";
import { getRuntime } from "./_runtime.ts";
import { tellParent } from "./_successor.ts";

/**
 * Options for {@linkcode notify}.
 *
 * @example Notify once, and keep children from notifying
 * ```ts
 * import { notify } from "@socket-activate/socket-activate";
 *
 * await notify("READY=1", { unsetEnv: true }); // NOTIFY_SOCKET is gone afterwards
 * ```
 */
export interface NotifyOptions {
  /**
   * The environment to read NOTIFY_SOCKET from.
   *
   * @default {the process environment}
   */
  env?: Record<string, string | undefined>;
  /**
   * Remove NOTIFY_SOCKET afterwards, as `sd_notify(1, ...)` does.
   *
   * @default {false}
   */
  unsetEnv?: boolean;
}

/** The AF_UNIX address bytes of NOTIFY_SOCKET: a path, or NUL + an abstract name. */
function notifyAddress(value: string): Uint8Array {
  if (value.startsWith("/")) return new TextEncoder().encode(value);
  if (value.startsWith("@")) {
    const name = new TextEncoder().encode(value.slice(1));
    const out = new Uint8Array(name.length + 1);
    out.set(name, 1);
    return out;
  }
  if (/^vsock(-stream|-dgram|-seqpacket)?:/.test(value)) {
    throw new ActivationError(
      "ENOTSUP",
      `NOTIFY_SOCKET="${value}" is an AF_VSOCK address, which socket-activate does not support: ` +
        "run the service in the host's service manager, or give the VM an AF_UNIX notify socket",
    );
  }
  throw new ActivationError(
    "EINVAL",
    `NOTIFY_SOCKET="${value}" is neither an absolute path nor an @abstract name`,
  );
}

/**
 * Sends a state to the service manager, as `sd_notify(3)`: one datagram of
 * newline-separated `KEY=VALUE` lines to the AF_UNIX socket NOTIFY_SOCKET
 * names (a path or an `@abstract` name). Deno, Bun and Node 26 send it
 * themselves (Deno needs `--allow-ffi`, Node 26 uses `node:ffi`); Node 22 and
 * 24, which have no unix datagram socket, run `systemd-notify`, so the
 * datagram's sender is systemd-notify when not root (use `NotifyAccess=all`
 * there).
 *
 * @param state The lines, e.g. `"READY=1"` or `"STATUS=Serving\nWATCHDOG=1"`.
 * @param options Where NOTIFY_SOCKET comes from.
 * @returns true when sent, false when NOTIFY_SOCKET is unset (no service manager listens).
 * @throws {ActivationError} `EINVAL` for a NOTIFY_SOCKET that is no AF_UNIX
 * address, `ENOTSUP` for `vsock:`, `EPERM` where the runtime lacks the
 * permission to send, `ECONNREFUSED` when nothing receives there. Node 22
 * and 24 wait until the receiver confirms (systemd-notify's BARRIER=1):
 * `ENOENT` without systemd-notify on PATH, `ETIMEDOUT` without a
 * confirmation within 5 s, `EINTR` when signals kill systemd-notify at each
 * of three tries.
 *
 * @example Tell systemd the service is ready
 * ```ts
 * import { notify } from "@socket-activate/socket-activate";
 *
 * await notify("READY=1\nSTATUS=Serving", { env: {} }); // false: no NOTIFY_SOCKET here
 * ```
 */
export async function notify(state: string, options: NotifyOptions = {}): Promise<boolean> {
  const rt = getRuntime();
  const value = notifySocket(options);
  if (options.unsetEnv) options.env ? delete options.env.NOTIFY_SOCKET : rt.deleteEnv("NOTIFY_SOCKET");
  if (value === undefined) return false;
  // A reload's successor leaves READY=1 to the process that started it, which
  // sends it with MAINPID= (src/_reload.ts).
  if (options.env === undefined && /^READY=1$/m.test(state) && tellParent("ready")) {
    state = state.split("\n").filter((line) => line !== "READY=1").join("\n");
    if (state.replace(/\n/g, "") === "") return true;
  }
  await rt.notifySend(notifyAddress(value), state, value);
  return true;
}

async function fdPassing(what: string) {
  const rt = getRuntime();
  const fp = await rt.fdPassing();
  if (fp === undefined) {
    throw new ActivationError(
      "ENOTSUP",
      `Cannot ${what}: passing fds to the service manager needs sendmsg with SCM_RIGHTS, which ` +
        (rt.name === "deno"
          ? "Deno has through FFI: run it with --allow-ffi"
          : rt.name === "node"
          ? `Node ${
            rt.version().replace(/^node /, "")
          } cannot do without a native addon. Node 26.9 and later pass fds ` +
            "over node:ffi, unless SOCKET_ACTIVATE_FFI=0, --no-experimental-ffi, or --permission without " +
            "--allow-ffi turns that off"
          : `${rt.name} cannot do without a native addon`),
    );
  }
  return fp;
}

function notifySocket(options: NotifyOptions): string | undefined {
  const rt = getRuntime();
  const value = options.env ? options.env.NOTIFY_SOCKET : rt.getEnv("NOTIFY_SOCKET");
  return value === undefined || value === "" ? undefined : value;
}

// systemd's fdname_is_valid: printable ASCII without ':', at most 255 bytes.
function checkFdName(name: string): void {
  if (name.length === 0 || name.length > 255 || !/^[\x20-\x7e]*$/.test(name) || name.includes(":")) {
    throw new TypeError(
      `Cannot use FDNAME="${name}": a name is 1 to 255 printable ASCII characters without ":"`,
    );
  }
}

/**
 * `FDSTORE=1`: hands fds to the service manager's fd store (FileDescriptorStoreMax=
 * in the unit), to be passed back on the next start as LISTEN_FDS with the
 * name given. Deno (with `--allow-ffi`), Bun and Node 26 (over `node:ffi`);
 * Node 22 and 24 cannot pass fds.
 *
 * @param fds The fds to store.
 * @param name Their FDNAME. @default {"stored"}
 * @param options Where NOTIFY_SOCKET comes from.
 * @returns Whether a service manager was there to take them.
 * @throws {ActivationError} `ENOTSUP` where the runtime cannot pass fds,
 * `ECONNREFUSED` when nothing receives at NOTIFY_SOCKET.
 * @example
 * ```ts
 * import { storeFds } from "@socket-activate/socket-activate";
 * await storeFds([3], "web");
 * ```
 */
export function storeFds(fds: number[], name?: string, options: NotifyOptions = {}): Promise<boolean> {
  if (name !== undefined) checkFdName(name);
  for (const fd of fds) {
    if (!Number.isInteger(fd) || fd < 0) {
      throw new TypeError(`Cannot store fd ${fd}: an fd is a whole number`);
    }
  }
  const value = notifySocket(options);
  if (value === undefined) return Promise.resolve(false);
  const state = "FDSTORE=1" + (name === undefined ? "" : `\nFDNAME=${name}`);
  return fdPassing("store fds").then((fp) => {
    if (!fp.send(notifyAddress(value), state, fds)) throw refused(value);
    return true;
  });
}

/**
 * `FDSTOREREMOVE=1`: drops the stored fds named `name` from the fd store.
 *
 * @param name Their FDNAME.
 * @returns Whether a service manager was there to hear it.
 * @example
 * ```ts
 * import { removeFds } from "@socket-activate/socket-activate";
 * await removeFds("web");
 * ```
 */
export function removeFds(name: string): Promise<boolean> {
  checkFdName(name);
  return notify(`FDSTOREREMOVE=1\nFDNAME=${name}`);
}

/**
 * `BARRIER=1`: waits until the service manager has processed every
 * notification sent before, as `sd_notify_barrier(3)`: sends a pipe's write
 * end and waits for it to be closed. Deno (with `--allow-ffi`), Bun and Node 26.
 *
 * @param timeoutMs How long to wait. @default {5000}
 * @param options Where NOTIFY_SOCKET comes from.
 * @returns true when the service manager caught up, false without
 * NOTIFY_SOCKET or on time-out.
 * @throws {ActivationError} `ENOTSUP` where the runtime cannot pass fds.
 * @example
 * ```ts
 * import { barrier, ready } from "@socket-activate/socket-activate";
 * await ready();
 * await barrier();
 * ```
 */
export async function barrier(timeoutMs = 5000, options: NotifyOptions = {}): Promise<boolean> {
  const value = notifySocket(options);
  if (value === undefined) return false;
  const fp = await fdPassing("send BARRIER=1");
  const pipe = fp.pipe();
  if (pipe === undefined) throw new ActivationError("ENOTSUP", "Cannot send BARRIER=1: pipe2() failed");
  const [r, w] = pipe;
  try {
    const sent = fp.send(notifyAddress(value), "BARRIER=1", [w]);
    fp.close(w);
    if (!sent) throw refused(value);
    const deadline = Date.now() + timeoutMs;
    while (!fp.hungUp(r)) {
      if (Date.now() >= deadline) return false;
      await new Promise((res) => setTimeout(res, 2));
    }
    return true;
  } finally {
    fp.close(r);
  }
}

/** @internal The error for a datagram nothing received. */
export function refused(value: string): ActivationError {
  return new ActivationError(
    "ECONNREFUSED",
    `Cannot send to NOTIFY_SOCKET="${value}": no datagram socket receives there (the service manager ` +
      "is gone, or the path is wrong)",
  );
}

/**
 * `READY=1`: start-up is complete (Type=notify).
 *
 * @returns Whether a service manager was there to hear it.
 * @example
 * ```ts
 * import { ready } from "@socket-activate/socket-activate";
 * await ready();
 * ```
 */
export function ready(): Promise<boolean> {
  return notify("READY=1");
}

/**
 * `RELOADING=1` with `MONOTONIC_USEC` (CLOCK_MONOTONIC) in the same datagram,
 * as Type=notify-reload requires; send `READY=1` when the reload is done.
 *
 * @returns Whether a service manager was there to hear it.
 * @example
 * ```ts
 * import { ready, reloading } from "@socket-activate/socket-activate";
 * await reloading();
 * await ready();
 * ```
 */
export function reloading(): Promise<boolean> {
  return notify(`RELOADING=1\nMONOTONIC_USEC=${getRuntime().monotonicUsec()}`);
}

/**
 * `STOPPING=1`: the service is shutting down.
 *
 * @returns Whether a service manager was there to hear it.
 * @example
 * ```ts
 * import { stopping } from "@socket-activate/socket-activate";
 * await stopping();
 * ```
 */
export function stopping(): Promise<boolean> {
  return notify("STOPPING=1");
}

/**
 * `STATUS=text`: a line for `systemctl status`.
 *
 * @param text One line of status.
 * @returns Whether a service manager was there to hear it.
 * @example
 * ```ts
 * import { status } from "@socket-activate/socket-activate";
 * await status("3 connections served");
 * ```
 */
export function status(text: string): Promise<boolean> {
  if (text.includes("\n")) throw new TypeError(`Cannot send STATUS="${text}": it spans lines`);
  return notify(`STATUS=${text}`);
}

/**
 * `WATCHDOG=1`: the keep-alive ping for WatchdogSec=.
 *
 * @returns Whether a service manager was there to hear it.
 * @example
 * ```ts
 * import { watchdog } from "@socket-activate/socket-activate";
 * await watchdog();
 * ```
 */
export function watchdog(): Promise<boolean> {
  return notify("WATCHDOG=1");
}

/**
 * `EXTEND_TIMEOUT_USEC=us`: extend the current start, stop or reload timeout.
 *
 * @param us Microseconds from now.
 * @returns Whether a service manager was there to hear it.
 * @example
 * ```ts
 * import { extendTimeout } from "@socket-activate/socket-activate";
 * await extendTimeout(30_000_000);
 * ```
 */
export function extendTimeout(us: number): Promise<boolean> {
  if (!Number.isInteger(us) || us < 0) {
    throw new RangeError(`Cannot extend the timeout by ${us} µs: give whole microseconds, 0 or more`);
  }
  return notify(`EXTEND_TIMEOUT_USEC=${us}`);
}

/**
 * `ERRNO=n`: why the service failed, as an errno number.
 *
 * @param n The errno number.
 * @returns Whether a service manager was there to hear it.
 * @example
 * ```ts
 * import { errno } from "@socket-activate/socket-activate";
 * await errno(2);
 * ```
 */
export function errno(n: number): Promise<boolean> {
  if (!Number.isInteger(n) || n < 0) {
    throw new RangeError(`Cannot send ERRNO=${n}: an errno is a whole number, 0 or more`);
  }
  return notify(`ERRNO=${n}`);
}

/**
 * `MAINPID=pid`: the service's main process is another one.
 *
 * @param pid The new main PID.
 * @returns Whether a service manager was there to hear it.
 * @example
 * ```ts
 * import { mainPid } from "@socket-activate/socket-activate";
 * await mainPid(1234);
 * ```
 */
export function mainPid(pid: number): Promise<boolean> {
  if (!Number.isInteger(pid) || pid <= 0) {
    throw new RangeError(`Cannot send MAINPID=${pid}: a PID is a whole number above 0`);
  }
  return notify(`MAINPID=${pid}`);
}

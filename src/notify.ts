import { ActivationError } from "./errors.ts";
import { getRuntime } from "./_runtime.ts";

/** Options for {@linkcode notify}. */
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
 * names (a path or an `@abstract` name). Deno and Bun send it themselves (Deno
 * needs `--allow-ffi`); Node, which has no unix datagram socket, runs
 * `systemd-notify`, so the datagram's sender is systemd-notify when not root
 * (use `NotifyAccess=all` there).
 *
 * @param state The lines, e.g. `"READY=1"` or `"STATUS=Serving\nWATCHDOG=1"`.
 * @param options Where NOTIFY_SOCKET comes from.
 * @returns true when sent, false when NOTIFY_SOCKET is unset (no service manager listens).
 * @throws {ActivationError} `EINVAL` for a NOTIFY_SOCKET that is no AF_UNIX
 * address, `ENOTSUP` for `vsock:`, `EPERM` where the runtime lacks the
 * permission or the tool to send.
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
  const value = options.env ? options.env.NOTIFY_SOCKET : rt.getEnv("NOTIFY_SOCKET");
  if (options.unsetEnv) options.env ? delete options.env.NOTIFY_SOCKET : rt.deleteEnv("NOTIFY_SOCKET");
  if (value === undefined || value === "") return false;
  await rt.notifySend(notifyAddress(value), state, value);
  return true;
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

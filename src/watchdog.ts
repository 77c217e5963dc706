import { ActivationError } from "./errors.ts";
import { parsePid, safeAtou64 } from "./_parse.ts";
import { getRuntime } from "./_runtime.ts";
import { notify } from "./notify.ts";

/**
 * Options for {@linkcode watchdogInterval}.
 *
 * @example Read an environment of its own
 * ```ts
 * import { watchdogInterval } from "@socket-activate/socket-activate";
 *
 * console.log(watchdogInterval({ env: { WATCHDOG_USEC: "30000000" } })); // 30000000 (30 s)
 * ```
 */
export interface WatchdogOptions {
  /** The environment to read. @default {the process environment} */
  env?: Record<string, string | undefined>;
  /** The PID WATCHDOG_PID must equal. @default {this process's PID} */
  pid?: number;
  /** Remove WATCHDOG_USEC and WATCHDOG_PID afterwards. @default {false} */
  unsetEnv?: boolean;
}

const USEC_INFINITY = (1n << 64n) - 1n;

/**
 * The watchdog interval the service manager asked for (WatchdogSec=), in
 * microseconds, by the rules of `sd_watchdog_enabled(3)`: undefined when
 * WATCHDOG_USEC is unset or WATCHDOG_PID names another process. Ping at about
 * half of it with {@linkcode watchdog}, or let `listen({ watchdog: true })` do it.
 *
 * @param options Where to read from.
 * @returns Microseconds, or undefined when no watchdog is asked of this process.
 * @throws {ActivationError} `EINVAL` when WATCHDOG_USEC does not parse or is 0
 * or infinity, `ERANGE` when it or WATCHDOG_PID is out of range.
 *
 * @example Ping at half the interval
 * ```ts
 * import { watchdog, watchdogInterval } from "@socket-activate/socket-activate";
 *
 * const usec = watchdogInterval({ env: { WATCHDOG_USEC: "2000000" } });
 * if (usec !== undefined) setInterval(() => watchdog(), usec / 2000).unref?.();
 * ```
 */
export function watchdogInterval(options: WatchdogOptions = {}): number | undefined {
  const rt = options.env === undefined || options.pid === undefined ? getRuntime() : undefined;
  const get = (k: string) => options.env ? options.env[k] : rt!.getEnv(k);
  const usecText = get("WATCHDOG_USEC");
  const pidText = get("WATCHDOG_PID");
  if (options.unsetEnv) {
    for (const k of ["WATCHDOG_USEC", "WATCHDOG_PID"]) options.env ? delete options.env[k] : rt!.deleteEnv(k);
  }
  if (usecText === undefined) return undefined;
  const u = safeAtou64(usecText);
  if ("error" in u) {
    throw new ActivationError(
      u.error,
      `Cannot parse WATCHDOG_USEC="${usecText}": give the interval in microseconds`,
    );
  }
  if (u.value === 0n || u.value === USEC_INFINITY) {
    throw new ActivationError(
      "EINVAL",
      `WATCHDOG_USEC="${usecText}" is not an interval: 0 and infinity are not allowed`,
    );
  }
  if (pidText !== undefined) {
    const p = parsePid(pidText);
    if ("error" in p) {
      throw new ActivationError(p.error, `Cannot parse WATCHDOG_PID="${pidText}": give a PID`);
    }
    if (p.value !== BigInt(options.pid ?? rt!.pid())) return undefined;
  }
  return Number(u.value);
}

/**
 * @internal Pings WATCHDOG=1 at half the interval while the event loop runs
 * (a blocked loop misses its pings, which is the point); returns the stop
 * function, or undefined when no watchdog is asked for.
 */
export function keepAlive(onError: (e: unknown) => void): (() => void) | undefined {
  const usec = watchdogInterval();
  if (usec === undefined) return undefined;
  const rt = getRuntime();
  const ping = () => notify("WATCHDOG=1").catch(onError);
  ping();
  const timer = setInterval(ping, Math.max(1, Math.floor(usec / 2000)));
  rt.unrefTimer(timer);
  return () => clearInterval(timer);
}

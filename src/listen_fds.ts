import { ActivationError } from "./errors.ts";
import { parsePid, safeAtoi, safeAtou64 } from "./_parse.ts";
import { getRuntime, type Runtime } from "./_runtime.ts";

// The process's activation fds, read once: listenFds() unsets the variables,
// so a second listen() (another named socket) must not read them again.
let cached: { fds: ListenFd[] } | { error: unknown } | undefined;
const claimed = new Set<number>();

/** Records what listenFds() read from the real environment. */
export function remember(result: { fds: ListenFd[] } | { error: unknown }): void {
  cached = result;
}

/** The cached result, or undefined before the first read. */
export function remembered(): { fds: ListenFd[] } | { error: unknown } | undefined {
  return cached;
}

/** Marks an fd as served; false when another server already took it. */
export function claim(fd: number): boolean {
  if (claimed.has(fd)) return false;
  claimed.add(fd);
  return true;
}

export function release(fd: number): void {
  claimed.delete(fd);
}

/**
 * The first fd a service manager passes (`SD_LISTEN_FDS_START`).
 *
 * @example Position among the passed fds
 * ```ts
 * import { LISTEN_FDS_START, listenFds } from "@socket-activate/socket-activate";
 *
 * for (const { fd, name } of listenFds()) {
 *   console.log(`#${fd - LISTEN_FDS_START}: fd ${fd} "${name}"`); // #0 is fd 3
 * }
 * ```
 */
export const LISTEN_FDS_START = 3;

/**
 * One fd handed over by the service manager.
 *
 * @example Look the fds up by name
 * ```ts
 * import { type ListenFd, listenFds } from "@socket-activate/socket-activate";
 *
 * const byName = new Map<string, ListenFd>(listenFds().map((f) => [f.name, f]));
 * console.log(byName.get("web")?.fd ?? "no fd named web");
 * ```
 */
export interface ListenFd {
  /** The fd number: 3, 4, ... */
  fd: number;
  /**
   * Its name from LISTEN_FDNAMES (`FileDescriptorName=` in the socket unit),
   * `unknown` when the variable is unset, `connection` for Accept=yes.
   */
  name: string;
}

/**
 * Options for {@linkcode listenFds}.
 *
 * @example Read an environment of its own, as a test does
 * ```ts
 * import { listenFds } from "@socket-activate/socket-activate";
 *
 * // LISTEN_PID names another process: not activated, and the object is left as it is.
 * const env = { LISTEN_PID: "1", LISTEN_FDS: "1", LISTEN_FDNAMES: "web" };
 * console.log(listenFds({ env, pid: 2, unsetEnv: false })); // []
 * ```
 */
export interface ListenFdsOptions {
  /**
   * The environment to read. When given, unsetting deletes the keys from this
   * object instead of the process environment.
   *
   * @default {the process environment}
   */
  env?: Record<string, string | undefined>;
  /**
   * The PID LISTEN_PID must equal.
   *
   * @default {this process's PID}
   */
  pid?: number;
  /**
   * The parent's PID, to recognise a wrapper that took the sockets. Only
   * consulted when LISTEN_PID does not match `pid`.
   *
   * @default {this process's parent PID, or none when `pid` is given}
   */
  ppid?: number;
  /**
   * This process's ancestors' PIDs, parent first, to recognise a wrapper
   * (`npx`, `npm start`, `npx tsx`, nested shells) that took the sockets two
   * or more generations up. Only consulted when LISTEN_PID does not match
   * `pid`. PID 1 counts only as the parent (every process descends from it),
   * except in a container (a `container` variable in the environment, or
   * podman's `/run/.containerenv`), where LISTEN_PID=1 names the container's
   * command: podman passes the sockets to it.
   *
   * @default {the parent chain read from /proc (32 generations at most), or `[ppid]` when `pid` is given}
   */
  ancestors?: readonly number[];
  /**
   * Remove LISTEN_PID, LISTEN_PIDFDID, LISTEN_FDS and LISTEN_FDNAMES from the
   * environment on every path (success, mismatch and error), as
   * `sd_listen_fds(1)` does, so that child processes do not see them.
   *
   * @default {true}
   */
  unsetEnv?: boolean;
}

const VARS = ["LISTEN_PID", "LISTEN_PIDFDID", "LISTEN_FDS", "LISTEN_FDNAMES"] as const;

const INT_MAX = 2147483647n;

/**
 * The fds this process was handed by the service manager, with their names:
 * `sd_listen_fds_with_names(3)` to the letter. An empty array means "not
 * activated" (LISTEN_PID unset or naming another process, or LISTEN_FDS
 * unset); a malformed environment throws.
 *
 * @param options Where to read from and whether to unset the variables.
 * @returns The fds from 3 upwards with their names; empty when not activated.
 * @throws {ActivationError} `EINVAL` or `ERANGE` when a variable does not
 * parse or the name count differs from LISTEN_FDS, `EBADF` when a passed fd is
 * not open, and `ESRCH` when LISTEN_PID names this process's parent or another
 * ancestor (a wrapper such as `npx` or `npm start` stood between the service
 * manager and it; the message names the wrapper's command line).
 *
 * @example Pick the socket named "web"
 * ```ts
 * import { listenFds } from "@socket-activate/socket-activate";
 *
 * const web = listenFds().find((f) => f.name === "web");
 * console.log(web ? `activated on fd ${web.fd}` : "not activated");
 * ```
 */
export function listenFds(options: ListenFdsOptions = {}): ListenFd[] {
  // What the real environment says is kept for listen(), which cannot read
  // it again once it has been unset.
  const real = options.env === undefined && options.pid === undefined && (options.unsetEnv ?? true);
  if (!real) return readListenFds(options);
  try {
    const fds = readListenFds(options);
    remember({ fds });
    return fds;
  } catch (error) {
    remember({ error });
    throw error;
  }
}

function readListenFds(options: ListenFdsOptions): ListenFd[] {
  const rt = options.env === undefined || options.pid === undefined ? getRuntime() : undefined;
  const env = options.env;
  const get = (k: string) => env ? env[k] : rt!.getEnv(k);
  const unset = options.unsetEnv ?? true;
  // Read everything first: libsystemd unsets the variables on every exit path.
  const pidText = get("LISTEN_PID");
  const pidfdText = get("LISTEN_PIDFDID");
  const fdsText = get("LISTEN_FDS");
  const namesText = get("LISTEN_FDNAMES");
  if (unset) {
    for (const k of VARS) env ? delete env[k] : rt!.deleteEnv(k);
  }

  // libsystemd splits LISTEN_FDNAMES before it looks at anything else, so a
  // name list that does not split is an error even when LISTEN_PID is unset.
  const names = namesText === undefined ? undefined : splitNames(namesText);
  if (names === "EINVAL") {
    throw new ActivationError(
      "EINVAL",
      `Cannot parse LISTEN_FDNAMES="${namesText}": it ends in a lone backslash`,
    );
  }

  if (pidText === undefined) return [];
  const pid = parsePid(pidText);
  if ("error" in pid) throw malformed("LISTEN_PID", pidText, pid.error);
  const self = options.pid ?? rt!.pid();
  if (pid.value !== BigInt(self)) {
    // libsystemd's answer is "not for this process". When LISTEN_PID names an
    // ancestor, though, the sockets were meant for this program and a wrapper
    // took them (npx and npm are Node programs, which mark inherited fds
    // close-on-exec at start-up: the program behind them gets no fd 3 at all,
    // so what fds 3.. are tells nothing). A fallback would hide that while
    // the activated client waits: ESRCH instead.
    const container = pid.value === 1n && inContainer(options, rt);
    const generation = fdsText === undefined
      ? undefined
      : ancestorGeneration(pid.value, options, rt, container);
    if (generation !== undefined) {
      throw wrapperError(pidText, Number(pid.value), generation, self, rt, container);
    }
    return [];
  }

  if (pidfdText !== undefined) {
    const id = safeAtou64(pidfdText);
    if ("error" in id) throw malformed("LISTEN_PIDFDID", pidfdText, id.error);
    // Compared only where this process can learn its own pidfd inode id; the
    // check is skipped otherwise, as pidfd_get_inode_id_self_cached() failing
    // makes libsystemd skip it.
    const own = options.pid === undefined ? rt!.pidfdId() : undefined;
    if (own !== undefined && own !== id.value) return [];
  }

  if (fdsText === undefined) return [];
  const n = safeAtoi(fdsText);
  if ("error" in n) throw malformed("LISTEN_FDS", fdsText, n.error);
  if (n.value <= 0n || n.value > INT_MAX - 3n) {
    throw new ActivationError(
      "EINVAL",
      `LISTEN_FDS="${fdsText}" is out of range: it must count the passed fds, 1 or more`,
    );
  }
  const count = Number(n.value);

  const runtime = rt ?? getRuntime();
  for (let fd = LISTEN_FDS_START; fd < LISTEN_FDS_START + count; fd++) {
    if (runtime.setCloexec(fd) === "closed") {
      throw new ActivationError(
        "EBADF",
        `LISTEN_FDS="${fdsText}" promises fds 3 to ${LISTEN_FDS_START + count - 1}, but fd ${fd} ` +
          "is not open: the program that started this one closed it or did not pass it " +
          "(run `socket-activate inspect` under the same ExecStart= to see what arrives)",
      );
    }
  }

  if (names !== undefined && names.length !== count) {
    throw new ActivationError(
      "EINVAL",
      `LISTEN_FDNAMES="${namesText}" has ${names.length} name(s) but LISTEN_FDS="${fdsText}" ` +
        `passes ${count} fd(s): give one name per socket, in the order of the fds`,
    );
  }
  const result: ListenFd[] = [];
  for (let i = 0; i < count; i++) {
    result.push({ fd: LISTEN_FDS_START + i, name: names ? names[i] : "unknown" });
  }
  return result;
}

/** Generations a wrapper's chain is followed up: npm start with a shell is three. */
const MAX_GENERATIONS = 32;

/**
 * Whether this process runs in a container that can have been handed
 * sockets: the `container` variable that systemd-nspawn, LXC and podman (with
 * an image) set, or podman's /run/.containerenv (with `--rootfs` too). Not
 * Docker's /.dockerenv: Docker passes no sockets, and a sandbox built on it
 * (a CI runner's) would make every LISTEN_PID=1 there a wrapper.
 */
function inContainer(options: ListenFdsOptions, rt: Runtime | undefined): boolean {
  if (options.env !== undefined) return options.env.container !== undefined;
  if (rt!.getEnv("container") !== undefined) return true;
  try {
    return rt!.readText("/run/.containerenv") !== undefined;
  } catch {
    return false; // Deno without -A or --allow-ffi may not read them
  }
}

/**
 * 1 when `target` is the parent, 2 the grandparent, ...; undefined when it
 * is no ancestor (or the chain cannot be read). PID 1 counts only as the
 * parent (everything descends from it), or anywhere in a container, whose
 * PID 1 is the command podman passed the sockets to.
 */
function ancestorGeneration(
  target: bigint,
  options: ListenFdsOptions,
  rt: Runtime | undefined,
  container: boolean,
): number | undefined {
  const given = options.ancestors ??
    (options.ppid !== undefined ? [options.ppid] : options.pid !== undefined ? [] : undefined);
  let pid = given ? given[0] : rt!.ppid();
  for (let generation = 1; pid !== undefined && generation <= MAX_GENERATIONS; generation++) {
    if (BigInt(pid) === target && (generation === 1 || pid !== 1 || container)) return generation;
    if (pid <= 1) return undefined;
    pid = given ? given[generation] : parentOf(rt!, pid);
  }
  return undefined;
}

/** The parent PID of `pid` from /proc/PID/stat; undefined where it cannot be read. */
function parentOf(rt: Runtime, pid: number): number | undefined {
  let stat: string | undefined;
  try {
    stat = rt.readText(`/proc/${pid}/stat`);
  } catch {
    return undefined; // Deno without -A or --allow-ffi may not read /proc
  }
  // "PID (comm) STATE PPID ...": comm may hold spaces and parentheses.
  const m = stat === undefined ? null : /^\)\s+\S+\s+(\d+)/.exec(stat.slice(stat.lastIndexOf(")")));
  return m ? Number(m[1]) : undefined;
}

/** A process's command line from /proc/PID/cmdline, arguments joined by spaces. */
function commandLine(rt: Runtime | undefined, pid: number): string | undefined {
  let raw: string | undefined;
  try {
    raw = rt?.readText(`/proc/${pid}/cmdline`);
  } catch {
    return undefined;
  }
  if (!raw) return undefined;
  // readText is latin1: the bytes back, then UTF-8.
  const bytes = Uint8Array.from(raw, (c) => c.charCodeAt(0));
  const text = new TextDecoder().decode(bytes).replace(/\0+$/, "").replaceAll("\0", " ");
  return text.length > 200 ? text.slice(0, 199) + "…" : text;
}

function wrapperError(
  pidText: string,
  pid: number,
  generation: number,
  self: number,
  rt: Runtime | undefined,
  container: boolean,
): ActivationError {
  const cmd = commandLine(rt, pid);
  const which = generation === 1
    ? "is this process's parent"
    : `is an ancestor of this process, ${generation} generations up`;
  if (container) {
    const command = cmd === undefined ? "" : ` (${JSON.stringify(cmd)})`;
    return new ActivationError(
      "ESRCH",
      `LISTEN_PID="${pidText}" is the container's command, PID 1${command}, which ${which}, not this ` +
        `process (PID ${self}): in a container the sockets go to its command, and a wrapper there (npm start, ` +
        "an entrypoint script without exec, a shell) took them; no fallback is used in its place. Make the " +
        'runtime itself the container\'s command, in exec form (CMD ["node", "server.js"]), or end the ' +
        "entrypoint script with exec (exec node server.js)",
    );
  }
  return new ActivationError(
    "ESRCH",
    `LISTEN_PID="${pidText}" ${which} (PID ${pid}${cmd === undefined ? "" : `, ${JSON.stringify(cmd)}`}), ` +
      `not this process (PID ${self}): a wrapper between the service manager and the runtime (npx, ` +
      "npm start, npx tsx, a shell without exec) took the sockets, and no fallback is used in its place. " +
      "Start the runtime directly in ExecStart= (for example ExecStart=/usr/bin/node /srv/app/server.js; " +
      "`socket-activate unit` resolves npx, npm scripts and tsx to the program itself), or use exec in a " +
      "wrapper script",
  );
}

/**
 * systemd's strv_split_full(":", EXTRACT_DONT_COALESCE_SEPARATORS): "a::b" is
 * three names, and a backslash takes the next character literally ("a\\:b" is
 * one name, "a:b"); a trailing backslash does not split.
 */
function splitNames(text: string): string[] | "EINVAL" {
  const names: string[] = [];
  let current = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "\\") {
      if (i + 1 >= text.length) return "EINVAL";
      current += text[++i];
    } else if (c === ":") {
      names.push(current);
      current = "";
    } else current += c;
  }
  names.push(current);
  return names;
}

function malformed(name: string, value: string, code: "EINVAL" | "ERANGE") {
  const why = code === "ERANGE"
    ? "the number is out of range (negative, zero or too large)"
    : "it is not a number (decimal, 0x hex, 0 octal, 0b binary or 0o octal, nothing after it)";
  return new ActivationError(code, `Cannot parse ${name}="${value}": ${why}`);
}

// `socket-activate run`: a socket-activating launcher, the job of
// systemd-socket-activate (whose option names and meanings it keeps where they
// overlap) plus restarts on the same sockets. Loaded by src/cli/main.ts only for
// `run`, so the echo server never pays for it.
import {
  type Accepted,
  type ChildExit,
  type ChildProc,
  describeSpec,
  type HeldSocket,
  type Launcher,
  type ListenSpec,
  parseIPv4,
  parseIPv6,
} from "./launcher.ts";

export const RUN_USAGE =
  "usage: socket-activate run [-l ADDR]... [-d] [-a] [--inetd] [--fdname NAME[:NAME...]] [-E NAME[=VALUE]]... " +
  "[--now] [--restart[=MODE]] [--watch PATH]... [--reload=MODE] [--grace SEC] [--timeout-stop SEC] [--workers N] " +
  "[--watchdog SEC] " +
  "[--] COMMAND [ARGS...]";

export const RUN_HELP = `${RUN_USAGE}

Opens the sockets, then starts COMMAND with them as fds 3, 4, ... and
LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID (the PID of COMMAND itself), as
systemd does for a socket unit: COMMAND starts when the first connection (or
datagram) arrives, or at once with --now. The launcher never accepts a
connection itself: connections wait in the socket's backlog while no COMMAND
runs, so a restart refuses none.

Options:
  -l, --listen ADDR       listen on ADDR (repeatable): PORT (all addresses,
                          IPv6 and IPv4), HOST:PORT, [V6]:PORT, /path (unix
                          socket; a stale socket file is replaced), @name
                          (abstract unix socket). HOST is an IP address.
  -d, --datagram          datagram sockets (UDP, unix datagram) instead of
                          stream sockets
  -a, --accept            accept each connection and start one COMMAND per
                          connection, with the connected socket as fd 3 named
                          "connection", and REMOTE_ADDR / REMOTE_PORT set
      --inetd             as --accept, with the connection as COMMAND's stdin
                          and stdout instead of fd 3, and no LISTEN_ variables
                          (inetd's way, as systemd-socket-activate --inetd
                          and StandardInput=socket)
      --fdname NAME[:NAME...]
                          names for the fds, in -l order (LISTEN_FDNAMES); one
                          name names them all, missing ones are "unknown"
  -E, --setenv NAME[=VALUE]
                          set NAME in COMMAND's environment (repeatable);
                          without =VALUE, pass the launcher's NAME on
      --now               start COMMAND at once, not at the first connection
      --restart[=MODE]    keep the sockets when COMMAND exits, as a systemd
                          socket unit does, and restart COMMAND on SIGHUP.
                          MODE is systemd's Restart=: on-failure (the
                          default) starts COMMAND again at once after a
                          failure (a non-zero status or a signal other than
                          SIGHUP, SIGINT, SIGTERM, SIGPIPE) and at the next
                          connection after a clean exit; always starts it
                          again at once after either. Failures in a row
                          within 10 s of their start wait 0.1 s, doubling
                          up to 5 s, before the next start; clean exits never
      --watch PATH        restart COMMAND when a file under PATH changes
                          (repeatable); when COMMAND exits by itself, wait for
                          the next change (or as --restart says)
      --reload=MODE       how SIGHUP and --watch restart COMMAND. overlap
                          (the default): start the new COMMAND first, on the
                          same sockets, wait until it is ready, then SIGTERM
                          the old one and let it drain; if the new one exits
                          first, the old one keeps serving. stop-first:
                          SIGTERM, wait for the exit, then start the new one
                          (for a COMMAND that cannot run twice at once)
      --grace SEC         ready means READY=1 on the NOTIFY_SOCKET the
                          launcher gives each COMMAND (Deno, Bun), or SEC
                          seconds after the start for a COMMAND that sends
                          none, and always under Node's launcher, which has
                          no unix datagram socket (default 1)
      --timeout-stop SEC  SIGKILL a COMMAND that still runs SEC seconds after
                          SIGTERM (default 10), as systemd's TimeoutStopSec=
      --watchdog SEC      WATCHDOG_USEC for COMMAND, as systemd's WatchdogSec=:
                          once COMMAND is ready (READY=1, or its first
                          WATCHDOG=1), SEC seconds without a WATCHDOG=1 get
                          it SIGABRT (then, with --restart, a new one
                          starts). Deno and Bun (Node's launcher has no
                          NOTIFY_SOCKET to hear the pings on)
      --workers N         run N copies of COMMAND on the same sockets (prefork:
                          the kernel spreads the connections), each with its
                          own LISTEN_PID (and NOTIFY_SOCKET, Deno and Bun),
                          all started by the first connection (or --now). A worker that fails is
                          replaced, backed off as --restart says (on-failure
                          unless --restart=always); when every worker has
                          exited cleanly, the next connection starts N again.
                          SIGHUP and --watch replace them one at a time, each
                          new one ready before an old one gets SIGTERM
  -h, --help              this help

COMMAND gets a clean environment, as under systemd-socket-activate: TERM,
COLORTERM, NO_COLOR, PATH, USER and HOME, the LISTEN_ variables and what -E
adds, and SOCKET_ACTIVATE_RUN=1 (the package then leaves SIGHUP to the
launcher). SIGINT and SIGTERM go to COMMAND (to every COMMAND with --accept).
SIGHUP restarts COMMAND with --restart or --watch (as --reload says) and is
passed on otherwise (to every COMMAND with --accept). No COMMAND outlives the
launcher: each starts under setpriv --pdeathsig KILL where util-linux's setpriv
is installed, so even a SIGKILL of the launcher ends them.

Exit status: 0 when COMMAND exits 0 (with --accept, or while no COMMAND
runs: 0 once stopped by SIGINT or SIGTERM), else COMMAND's status (128 + the signal number when a
signal killed it; with --workers, the highest of theirs, a death by the stop signal counting as 0); 1 a socket could not be opened; 2 bad arguments; 127
COMMAND not found, or no /bin/sh to start it through.

Runtimes: Node holds the sockets in a worker thread that never polls them;
Deno (with --allow-ffi, as -A grants) and Bun open them through libc, and so
does Node 26 (node:ffi) for unix datagram sockets, which Node 22 and 24 cannot
open; Node 26 waits for the first datagram with poll(2) over node:ffi, Node 22
and 24 start a -d COMMAND at once (they cannot wait without reading it).

Examples:
  npx socket-activate run -l 8080 -- node server.js
  npx socket-activate run -l 8080 --restart --watch src -- node server.js
  npx socket-activate run -l 8080 --workers 4 -- node server.js  # 4 processes, one socket
  npx socket-activate run -l 127.0.0.1:8080 -l /tmp/admin.sock --fdname web:admin -- deno run -A app.ts
  npx socket-activate run -d -l 5353 -- bun run dns.ts
  npx socket-activate run -a -l 2000 -- node echo.mjs     # one echo.mjs per connection, on fd 3
  npx socket-activate run --inetd -l 2000 -- cat          # one cat per connection, on stdin/stdout
  deno run -A npm:socket-activate run -l 8080 --restart -- deno run -A server.ts
  kill -HUP <launcher PID>                                 # restart without refusing a connection
`;

class UsageError extends Error {}

/** When COMMAND starts again at once after it exits (systemd's Restart= values). */
export type RestartMode = "no" | "on-failure" | "always";
const RESTART_MODES = ["on-failure", "always"];

/** What `run` was asked to do. */
export interface RunOptions {
  listen: ListenSpec[];
  datagram: boolean;
  accept: boolean;
  /** --inetd: accept mode with the connection as stdin and stdout. */
  inetd: boolean;
  fdnames: string[];
  setenv: [string, string | undefined][];
  /** systemd's Restart=, "no" without --restart. */
  restart: RestartMode;
  now: boolean;
  reload: "overlap" | "stop-first";
  /** How long a new COMMAND that sends no READY=1 runs before it counts as ready, in ms. */
  graceMs: number;
  stopTimeoutMs: number;
  /** --watchdog SEC in ms: SIGABRT for a COMMAND silent that long (systemd's WatchdogSec=); 0 without. */
  watchdogMs: number;
  /** --workers N: N copies of COMMAND at once; 0 without the option. */
  workers: number;
  watch: string[];
  command: string[];
}

/** Parses `run`'s arguments; throws UsageError with a one-line reason. */
export function parseRunArgs(args: string[]): RunOptions | "help" {
  const o: RunOptions = {
    listen: [],
    datagram: false,
    accept: false,
    inetd: false,
    fdnames: [],
    setenv: [],
    restart: "no",
    now: false,
    reload: "overlap",
    graceMs: 1000,
    stopTimeoutMs: STOP_TIMEOUT_MS,
    watchdogMs: 0,
    workers: 0,
    watch: [],
    command: [],
  };
  const listenText: string[] = [];
  let i = 0;
  for (; i < args.length; i++) {
    const a = args[i];
    if (a === "--") {
      i++;
      break;
    }
    // getopt's "+": the first non-option starts COMMAND.
    if (!a.startsWith("-") || a === "-") break;
    const eq = a.startsWith("--") ? a.indexOf("=") : -1;
    const name = eq > 0 ? a.slice(0, eq) : a;
    const value = (): string => {
      if (eq > 0) return a.slice(eq + 1);
      const v = args[++i];
      if (v === undefined) throw new UsageError(`${name} needs a value`);
      return v;
    };
    const flag = () => {
      if (eq > 0) throw new UsageError(`${name} takes no value`);
    };
    if (name === "-l" || name === "--listen") listenText.push(value());
    else if (name === "-d" || name === "--datagram") (flag(), o.datagram = true);
    else if (name === "-a" || name === "--accept") (flag(), o.accept = true);
    else if (name === "--inetd") (flag(), o.inetd = o.accept = true);
    else if (name === "--now") (flag(), o.now = true);
    else if (name === "--reload") {
      const mode = value();
      if (mode !== "overlap" && mode !== "stop-first") {
        throw new UsageError(`--reload "${mode}" is not a mode: use --reload=overlap or --reload=stop-first`);
      }
      o.reload = mode;
    } else if (name === "--grace") {
      const v = value();
      const sec = /^\d+(\.\d+)?$/.test(v) ? Number(v) : NaN;
      if (!(sec >= 0 && sec <= 3600)) {
        throw new UsageError(`--grace "${v}" is not a number of seconds (0-3600)`);
      }
      o.graceMs = sec * 1000;
    } else if (name === "--watchdog") {
      const v = value();
      const sec = /^\d+(\.\d+)?$/.test(v) ? Number(v) : NaN;
      if (!(sec > 0 && sec <= 3600)) {
        throw new UsageError(`--watchdog "${v}" is not a number of seconds (above 0, at most 3600)`);
      }
      o.watchdogMs = sec * 1000;
    } else if (name === "--timeout-stop") {
      const v = value();
      const sec = /^\d+(\.\d+)?$/.test(v) ? Number(v) : NaN;
      if (!(sec > 0 && sec <= 3600)) {
        throw new UsageError(`--timeout-stop "${v}" is not a number of seconds (above 0, at most 3600)`);
      }
      o.stopTimeoutMs = sec * 1000;
    } else if (name === "--workers") {
      const v = value();
      const n = /^\d{1,4}$/.test(v) ? Number(v) : NaN;
      if (!(n >= 1 && n <= 1024)) {
        throw new UsageError(`--workers "${v}" is not a number of workers (1-1024)`);
      }
      o.workers = n;
    } else if (name === "--restart") {
      const mode = eq > 0 ? a.slice(eq + 1) : "on-failure";
      if (!RESTART_MODES.includes(mode)) {
        throw new UsageError(
          `--restart="${mode}" is not a mode: use --restart, --restart=on-failure or --restart=always`,
        );
      }
      o.restart = mode as RestartMode;
    } else if (name === "--watch") o.watch.push(value());
    else if (name === "--fdname") o.fdnames.push(...parseFdnames(value()));
    else if (name === "-E" || name === "--setenv" || name === "--environment") {
      o.setenv.push(parseSetenv(value()));
    } else if (name === "-h" || name === "--help") return "help";
    else if (/^-l./.test(a)) listenText.push(a.slice(2));
    else if (/^-E./.test(a)) o.setenv.push(parseSetenv(a.slice(2)));
    else if (name === "--seqpacket") {
      throw new UsageError(`${name} is not supported: use systemd-socket-activate ${name}`);
    } else throw new UsageError(`unknown option "${a}"`);
  }
  o.command = args.slice(i);
  if (o.command.length === 0) throw new UsageError("COMMAND is missing: put it after the options (and --)");
  if (listenText.length === 0) throw new UsageError("nothing to listen on: give at least one -l ADDR");
  o.listen = listenText.map((t) => parseListenAddress(t, o.datagram));
  const accept = o.inetd ? "--inetd" : "--accept";
  if (o.datagram && o.accept) {
    throw new UsageError(
      `--datagram and ${accept} do not go together: datagram sockets accept no connections`,
    );
  }
  if (o.accept && (o.restart !== "no" || o.watch.length > 0 || o.now)) {
    throw new UsageError(
      `${accept} starts a COMMAND per connection: --restart, --watch and --now have no meaning with it`,
    );
  }
  if (o.accept && o.watchdogMs > 0) {
    throw new UsageError(
      `--watchdog and ${accept} do not go together: a COMMAND per connection has no watchdog`,
    );
  }
  if (o.accept && o.workers > 0) {
    throw new UsageError(
      `--workers and ${accept} do not go together: ${accept} starts a COMMAND per connection, ` +
        "--workers N COMMANDs that accept on the sockets; pick one",
    );
  }
  if (o.workers > 0 && o.reload === "stop-first") {
    throw new UsageError(
      "--workers and --reload=stop-first do not go together: workers run side by side, and a reload " +
        "replaces them one at a time, each new one ready before an old one stops",
    );
  }
  if (o.accept && o.fdnames.length > 0) {
    throw new UsageError(
      o.inetd
        ? "--fdname has no effect with --inetd: the connection is stdin and stdout, and has no name"
        : '--fdname has no effect with --accept: the connection is always named "connection"',
    );
  }
  if (o.fdnames.length > o.listen.length) {
    throw new UsageError(
      `--fdname gives ${o.fdnames.length} names for ${o.listen.length} socket(s): LISTEN_FDNAMES with more ` +
        "names than fds is an error for every libsystemd reader; give one name per -l",
    );
  }
  return o;
}

function parseFdnames(value: string): string[] {
  return value.split(":").map((n) => {
    if (n === "") throw new UsageError(`--fdname "${value}" has an empty name: give one name per socket`);
    // deno-lint-ignore no-control-regex -- control characters are what systemd refuses
    if (n.length > 255 || /[\x00-\x1f\x7f]/.test(n) || /[^\x20-\x7e]/.test(n)) {
      throw new UsageError(
        `--fdname "${n}" is not a valid fd name: printable ASCII, no ":", at most 255 characters`,
      );
    }
    return n;
  });
}

function parseSetenv(value: string): [string, string | undefined] {
  const eq = value.indexOf("=");
  const name = eq < 0 ? value : value.slice(0, eq);
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
    throw new UsageError(`-E "${value}": "${name}" is not a variable name (letters, digits, _)`);
  }
  if (/^LISTEN_(PID|FDS|FDNAMES|PIDFDID)$/.test(name)) {
    throw new UsageError(`-E "${value}": the launcher sets ${name} itself`);
  }
  return [name, eq < 0 ? undefined : value.slice(eq + 1)];
}

/**
 * Parses ADDR as systemd's socket_address_parse does: PORT (IPv6 any with
 * IPv4 mapped in), HOST:PORT, [V6]:PORT, /path, @abstract. Host names are
 * refused, as systemd refuses them.
 */
export function parseListenAddress(text: string, datagram: boolean): ListenSpec {
  const bad = (why: string) => new UsageError(`-l "${text}": ${why}`);
  if (text.startsWith("/")) {
    if (new TextEncoder().encode(text).length > 107) throw bad("a unix socket path is at most 107 bytes");
    return { text, datagram, kind: "unix", path: text };
  }
  if (text.startsWith("@")) {
    if (text.length < 2) throw bad("an abstract socket needs a name after @");
    if (new TextEncoder().encode(text).length > 108) throw bad("an abstract name is at most 107 bytes");
    return { text, datagram, kind: "unix", path: "\0" + text.slice(1) };
  }
  const port = (p: string) => {
    const n = /^\d{1,5}$/.test(p) ? Number(p) : NaN;
    if (!(n >= 1 && n <= 65535)) throw bad(`"${p}" is not a port (1-65535)`);
    return n;
  };
  if (/^\d+$/.test(text)) {
    return { text, datagram, kind: "ip", family: "ipv6", host: "::", port: port(text), dualStack: true };
  }
  const v6 = /^\[([^\]]*)\]:([^:]*)$/.exec(text);
  if (v6) {
    if (parseIPv6(v6[1]) === undefined) throw bad(`"${v6[1]}" is not an IPv6 address`);
    return { text, datagram, kind: "ip", family: "ipv6", host: v6[1], port: port(v6[2]), dualStack: false };
  }
  const v4 = /^([^:]*):([^:]*)$/.exec(text);
  if (v4) {
    if (parseIPv4(v4[1]) === undefined) {
      throw bad(
        `"${v4[1]}" is not an IPv4 address (host names are not resolved, as in systemd): ` +
          "use e.g. 127.0.0.1:PORT or [::1]:PORT",
      );
    }
    return { text, datagram, kind: "ip", family: "ipv4", host: v4[1], port: port(v4[2]), dualStack: false };
  }
  throw bad("use PORT, HOST:PORT, [IPV6]:PORT, /path or @name");
}

const PASSED_ENV = ["TERM", "COLORTERM", "NO_COLOR", "PATH", "USER", "HOME"];
const SIGNALS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
};
const STOP_TIMEOUT_MS = 10_000;
// The sh that sets LISTEN_PID to its own PID and then becomes COMMAND: no
// runtime can set a variable between fork and exec, and exec keeps the PID.
const EXEC_SH = 'LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"';
const SH = "/bin/sh";

/** Runs `socket-activate run ARGS`; resolves to the exit status. */
export async function runMain(
  args: string[],
  out: (s: string) => void,
  err: (s: string) => void,
  loadLauncher: () => Promise<Launcher>,
): Promise<number> {
  let opts: RunOptions | "help";
  try {
    opts = parseRunArgs(args);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    err(`socket-activate run: ${e.message}\n${RUN_USAGE}\n`);
    return 2;
  }
  if (opts === "help") {
    out(RUN_HELP);
    return 0;
  }
  const launcher = await loadLauncher();
  try {
    return await new Supervisor(opts, launcher, err).run();
  } catch (e) {
    if (e instanceof UsageError) {
      err(`socket-activate run: ${e.message}\n${RUN_USAGE}\n`);
      return 2;
    }
    if (e instanceof LaunchError) {
      err(`socket-activate run: ${e.message}\n`);
      return e.status;
    }
    throw e;
  }
}

function noWatchdog(): LaunchError {
  return new LaunchError(
    "--watchdog: Node's launcher has no NOTIFY_SOCKET to hear COMMAND's WATCHDOG=1 on (Node has no unix " +
      "datagram socket to receive on): run the launcher under Deno (deno run -A mod.ts run ...) or Bun",
    2,
  );
}

/** A failure that is not a usage error: a socket that cannot be opened, a missing COMMAND. */
export class LaunchError extends Error {
  readonly status: number;
  constructor(message: string, status = 1) {
    super(message);
    this.status = status;
  }
}

class Supervisor {
  private child: ChildProc | undefined;
  private stopSignal: string | undefined;
  private restartWanted = false;
  private toldWhyNow = false;
  private onDemand = false;
  private killTimers = new Map<number, ReturnType<typeof setTimeout>>();
  /** Every COMMAND that runs: the current one, a new one being readied, old ones draining. */
  private live = new Set<ChildProc>();
  /** The new COMMAND of a reload, until it is ready. */
  private pending: ChildProc | undefined;
  private reloadAgain: string | undefined;
  /** Called once by the first stop signal (the worker pool waits on it). */
  private onStop: (() => void) | undefined;
  private setpriv: string | undefined;
  private currentStarted = 0;
  private childEnv: Record<string, string> = {};
  private fds: number[] = [];
  private wake: (() => void) | undefined;
  private env: Record<string, string> = {};
  private unlinks: string[] = [];
  private readonly o: RunOptions;
  private readonly l: Launcher;
  private readonly log: (s: string) => void;

  constructor(o: RunOptions, l: Launcher, log: (s: string) => void) {
    this.o = o;
    this.l = l;
    this.log = log;
  }

  async run(): Promise<number> {
    const o = this.o;
    this.env = this.baseEnv();
    this.checkCommand();
    for (const w of o.watch) {
      if (this.l.lstat(w) === undefined) throw new UsageError(`--watch "${w}": no such file or directory`);
    }
    for (const s of o.listen) {
      if (s.kind !== "unix" || s.path.startsWith("\0")) continue;
      const kind = this.l.lstat(s.path);
      if (kind === "socket") this.l.unlink(s.path); // stale, as systemd replaces it
      else if (kind !== undefined) {
        throw new LaunchError(
          `-l "${s.text}": the path exists and is not a socket: remove it or pick another`,
        );
      }
      this.unlinks.push(s.path);
    }
    try {
      this.l.sealInheritedFds();
    } catch (e) {
      throw new LaunchError((e as Error).message); // Deno without --allow-ffi
    }
    try {
      return o.accept ? await this.runAccept() : await this.runHeld();
    } finally {
      for (const p of this.unlinks) this.l.unlink(p);
    }
  }

  private baseEnv(): Record<string, string> {
    const own = this.l.environment();
    const env: Record<string, string> = {};
    for (const k of PASSED_ENV) if (own[k] !== undefined) env[k] = own[k];
    // The launcher reloads COMMAND: the package in COMMAND leaves SIGHUP alone (src/_signals.ts).
    env.SOCKET_ACTIVATE_RUN = "1";
    for (const [k, v] of this.o.setenv) {
      if (v !== undefined) env[k] = v;
      else if (own[k] !== undefined) env[k] = own[k];
      else {
        throw new UsageError(`-E "${k}": ${k} is not set in the launcher's environment: give -E ${k}=VALUE`);
      }
    }
    return env;
  }

  private checkCommand(): void {
    // A root file system without a shell (a distroless image) cannot run
    // EXEC_SH: say so before any socket is opened, not as "exit 127" later.
    if (!this.l.isExecutable(SH)) {
      throw new LaunchError(
        `${SH} is missing: run starts COMMAND through it to set LISTEN_PID to COMMAND's own PID ` +
          "(no runtime can set a variable between fork and exec). Without a shell, let the service " +
          "manager start COMMAND (systemd, systemd-socket-activate, or podman under either), or add /bin/sh",
        127,
      );
    }
    const cmd = this.o.command[0];
    if (cmd.includes("/")) {
      if (!this.l.isExecutable(cmd)) throw new LaunchError(`COMMAND "${cmd}" is not an executable file`, 127);
      return;
    }
    const dirs = (this.env.PATH ?? "/usr/local/bin:/usr/bin:/bin").split(":");
    if (!dirs.some((d) => this.l.isExecutable(`${d || "."}/${cmd}`))) {
      throw new LaunchError(
        `COMMAND "${cmd}" is not in PATH="${this.env.PATH ?? ""}": give its path, or install it`,
        127,
      );
    }
  }

  private async runHeld(): Promise<number> {
    const o = this.o;
    if (o.watchdogMs > 0 && !this.l.notifySocket) throw noWatchdog();
    let held: HeldSocket[];
    try {
      held = await this.l.hold(o.listen);
    } catch (e) {
      throw new LaunchError((e as Error).message);
    }
    held.forEach((h, i) =>
      this.log(`socket-activate run: listening on ${describeSpec(h.spec)} as fd ${3 + i}\n`)
    );
    const env: Record<string, string> = { ...this.env, LISTEN_FDS: String(held.length) };
    if (o.fdnames.length > 0) {
      const names = o.fdnames.length === 1
        ? held.map(() => o.fdnames[0])
        : held.map((_, i) => o.fdnames[i] ?? "unknown");
      env.LISTEN_FDNAMES = names.join(":");
    }
    const fds = held.map((h) => h.fd);
    this.childEnv = env;
    this.fds = fds;
    try {
      return await (o.workers > 0 ? this.pool(held) : this.loop(held));
    } finally {
      // No COMMAND outlives the launcher: wait for the draining ones too.
      await Promise.all([...this.live].map((c) => c.exited));
    }
  }

  private async loop(held: HeldSocket[]): Promise<number> {
    const o = this.o;
    const restarts = o.restart !== "no" || o.watch.length > 0;

    const offs = [
      this.l.onSignal("SIGINT", () => this.stop("SIGINT")),
      this.l.onSignal("SIGTERM", () => this.stop("SIGTERM")),
      this.l.onSignal("SIGHUP", () => {
        if (restarts) this.requestRestart("SIGHUP");
        else if (this.child) this.l.kill(this.child.pid, "SIGHUP");
      }),
    ];
    let debounce: ReturnType<typeof setTimeout> | undefined;
    const unwatch = o.watch.length === 0 ? undefined : this.l.watch(o.watch, (path) => {
      // An editor's save is several events: restart once, after they settle.
      clearTimeout(debounce);
      debounce = setTimeout(() => this.requestRestart(`a change in ${path}`), 150);
    });
    try {
      let now = o.now;
      let failures = 0;
      for (;;) {
        if (!now) {
          const woke = await this.untilTraffic(held);
          if (woke === "stop") return 0;
        }
        now = false;
        this.restartWanted = false;
        this.child = this.startChild().proc;
        this.currentStarted = Date.now();
        const exit = await this.currentExit();
        const child = this.child;
        const started = this.currentStarted;
        this.child = undefined;
        const status = exitStatus(exit);
        if (this.stopSignal !== undefined) return status;
        if (this.restartWanted) {
          now = true;
          continue;
        }
        this.log(`socket-activate run: PID ${child.pid} ${describeExit(exit)}\n`);
        if (!restarts) return status;
        if (o.restart !== "no") {
          if (isFailure(exit)) {
            // systemd's start limit, as a backoff rather than a stop: failures
            // in a row, each within 10 s of its start, wait ever longer.
            failures = Date.now() - started < 10_000 ? failures + 1 : 1;
            const delay = Math.min(5000, 100 * 2 ** (failures - 1));
            this.log(`socket-activate run: restarting in ${delay} ms\n`);
            if (await this.sleep(delay)) return 128 + SIGNALS[this.stopSignal!];
            now = true;
          } else {
            failures = 0;
            now = o.restart === "always";
            if (!now) this.log("socket-activate run: COMMAND will start again at the next connection\n");
          }
          continue;
        }
        this.log(`socket-activate run: waiting for a change under ${o.watch.join(", ")} (or SIGHUP)\n`);
        if (await this.sleep(Infinity)) return 128 + SIGNALS[this.stopSignal!];
        now = true;
      }
    } finally {
      clearTimeout(debounce);
      unwatch?.();
      for (const off of offs) off();
    }
  }

  /**
   * --workers N: N COMMANDs on the same sockets, each in a slot of its own.
   * A slot's worker that fails is replaced after the backoff of --restart; a
   * clean exit leaves the slot empty (unless --restart=always), and once every
   * slot is empty the next connection starts all N again. A reload replaces
   * the workers one slot at a time (rollWorkers). As gunicorn's and puma's
   * arbiters do, the launcher only forks, counts and signals: the kernel
   * spreads the connections among the processes that accept.
   */
  private async pool(held: HeldSocket[]): Promise<number> {
    const o = this.o;
    const n = o.workers;
    const slots: Slot[] = Array.from({ length: n }, () => ({ failures: 0, started: 0 }));
    let settle: ((how: "stop" | "idle") => void) | undefined;
    let worst = 0;
    const label = (i: number) => `worker ${i + 1}/${n}: `;
    const idle = () => slots.every((s) => !s.child && !s.next && s.timer === undefined);
    const start = (i: number) => {
      const slot = slots[i];
      const { proc } = this.startChild(label(i));
      slot.child = proc;
      slot.started = Date.now();
      void proc.exited.then((e) => exited(i, proc, e));
      return proc;
    };
    const exited = (i: number, proc: ChildProc, e: ChildExit) => {
      const slot = slots[i];
      // Stopped: the worst status, where dying of the stop signal itself is
      // clean (a worker still starting has no handler for it yet).
      if (this.stopSignal !== undefined && e.signal !== this.stopSignal) {
        worst = Math.max(worst, exitStatus(e));
      }
      if (slot.child !== proc) return; // replaced by a reload, or a new one that never got ready
      slot.child = undefined;
      this.log(`socket-activate run: PID ${proc.pid} (${label(i).slice(0, -2)}) ${describeExit(e)}\n`);
      if (this.stopSignal !== undefined || slot.next) return; // a reload's new worker takes the slot
      replace(i, e);
    };
    const replace = (i: number, e: ChildExit) => {
      const slot = slots[i];
      if (isFailure(e)) {
        // --restart's backoff, per slot: failures in a row, each within 10 s of its start.
        slot.failures = Date.now() - slot.started < 10_000 ? slot.failures + 1 : 1;
        const delay = Math.min(5000, 100 * 2 ** (slot.failures - 1));
        this.log(`socket-activate run: restarting ${label(i).slice(0, -2)} in ${delay} ms\n`);
        slot.timer = setTimeout(() => {
          slot.timer = undefined;
          if (this.stopSignal === undefined && !slot.child) start(i);
        }, delay);
        return;
      }
      slot.failures = 0;
      if (o.restart === "always") start(i);
      else if (idle()) settle?.("idle");
    };
    this.rollWorkers = (why) => this.roll(why, slots, label, exited, replace);

    const offs = [
      this.l.onSignal("SIGINT", () => this.stop("SIGINT")),
      this.l.onSignal("SIGTERM", () => this.stop("SIGTERM")),
      this.l.onSignal("SIGHUP", () => this.requestRoll("SIGHUP", slots)),
    ];
    this.onStop = () => {
      for (const s of slots) clearTimeout(s.timer);
      settle?.("stop");
    };
    let debounce: ReturnType<typeof setTimeout> | undefined;
    const unwatch = o.watch.length === 0 ? undefined : this.l.watch(o.watch, (path) => {
      clearTimeout(debounce);
      debounce = setTimeout(() => this.requestRoll(`a change in ${path}`, slots), 150);
    });
    try {
      let now = o.now;
      for (;;) {
        if (!now && (await this.untilTraffic(held)) === "stop") return 0;
        now = false;
        if (this.stopSignal !== undefined) return 0;
        const settled = new Promise<"stop" | "idle">((r) => (settle = r));
        for (let i = 0; i < n; i++) start(i);
        if ((await settled) === "stop") {
          await Promise.all([...this.live].map((c) => c.exited));
          return worst;
        }
        settle = undefined;
        this.log(`socket-activate run: every worker exited cleanly: the next connection starts ${n} again\n`);
      }
    } finally {
      clearTimeout(debounce);
      unwatch?.();
      for (const off of offs) off();
      this.onStop = undefined;
    }
  }

  private rollWorkers: ((why: string) => Promise<void>) | undefined;
  private rolling = false;

  private requestRoll(why: string, slots: Slot[]): void {
    if (this.stopSignal !== undefined) return;
    if (slots.every((s) => !s.child)) {
      this.log(`socket-activate run: ${why}: no worker runs; the next one starts with what is on disk\n`);
      return;
    }
    if (this.rolling) {
      this.log(`socket-activate run: ${why}: a reload is under way; another follows it\n`);
      this.reloadAgain = why;
      return;
    }
    this.rolling = true;
    void this.rollWorkers!(why).finally(() => {
      this.rolling = false;
      const again = this.reloadAgain;
      this.reloadAgain = undefined;
      if (again !== undefined) this.requestRoll(again, slots);
    });
  }

  /**
   * A rolling reload: slot by slot, a new worker starts beside the old one;
   * once it is ready it takes the slot and the old one gets SIGTERM and
   * drains. A new worker that exits before it is ready ends the reload: the
   * old workers left keep serving.
   */
  private async roll(
    why: string,
    slots: Slot[],
    label: (i: number) => string,
    exited: (i: number, proc: ChildProc, e: ChildExit) => void,
    replace: (i: number, e: ChildExit) => void,
  ): Promise<void> {
    this.log(`socket-activate run: ${why}: replacing ${slots.length} workers one at a time\n`);
    for (const [i, slot] of slots.entries()) {
      if (this.stopSignal !== undefined) return;
      const old = slot.child;
      if (!old) continue; // empty (a clean exit) or waiting out a backoff: it starts anew by itself
      const { proc: next, ready } = this.startChild(label(i));
      slot.next = next;
      void next.exited.then((e) => exited(i, next, e));
      let timer: ReturnType<typeof setTimeout> | undefined;
      const grace = new Promise<string>((r) => {
        timer = setTimeout(() => r(`no READY=1 after ${this.o.graceMs / 1000} s`), this.o.graceMs);
      });
      const outcome = await Promise.race([ready, grace, next.exited]);
      clearTimeout(timer);
      slot.next = undefined;
      if (this.stopSignal !== undefined) return;
      if (typeof outcome !== "string") {
        const left = slots.filter((s) => s.child).map((s) => s.child!.pid);
        this.log(
          `socket-activate run: the new ${label(i).slice(0, -2)}, PID ${next.pid}, ${
            describeExit(outcome)
          } ` +
            `before it was ready: the reload stops there; PID ${left.join(", ") || "-"} keep serving\n`,
        );
        if (!slot.child) replace(i, outcome); // the old one died meanwhile: the slot is empty
        return;
      }
      slot.child = next;
      slot.started = Date.now();
      if (!this.live.has(old)) continue;
      this.log(`socket-activate run: PID ${next.pid} is ready (${outcome}): SIGTERM to PID ${old.pid}\n`);
      void old.exited.then((e) =>
        this.log(`socket-activate run: PID ${old.pid} (replaced) ${describeExit(e)}\n`)
      );
      this.terminate(old);
    }
  }

  private reloadQueued(): void {
    const why = this.reloadAgain;
    this.reloadAgain = undefined;
    if (why !== undefined && this.stopSignal === undefined && this.child) {
      void this.reload(why).finally(() => this.reloadQueued());
    }
  }

  /**
   * COMMAND's argv: through sh (LISTEN_PID), and under setpriv --pdeathsig
   * KILL where it is installed, so that the kernel ends COMMAND when the
   * launcher dies, even by SIGKILL. The death signal is tied to the thread
   * that forked: every runtime here spawns from its main thread.
   */
  private argv(): string[] {
    this.setpriv ??= ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => this.l.isExecutable(p)) ?? "";
    // --inetd: no LISTEN_PID to set, so no sh.
    const sh = this.o.inetd ? this.o.command : [SH, "-c", EXEC_SH, ...this.o.command];
    return this.setpriv ? [this.setpriv, "--pdeathsig", "KILL", ...sh] : sh;
  }

  /** Starts COMMAND on the held sockets, with a NOTIFY_SOCKET of its own where the runtime has one. */
  private startChild(label = ""): { proc: ChildProc; ready: Promise<string> } {
    const channel = this.l.notifySocket?.();
    const env = channel ? { ...this.childEnv, NOTIFY_SOCKET: channel.address } : this.childEnv;
    const dog = this.o.watchdogMs;
    if (dog > 0 && !channel) throw noWatchdog();
    if (dog > 0) env.WATCHDOG_USEC = String(dog * 1000);
    let isReady!: (how: string) => void;
    const ready = new Promise<string>((r) => (isReady = r));
    // systemd's watchdog: armed once start-up is complete (READY=1, or the first ping), re-armed by each ping.
    let bark: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      clearTimeout(bark);
      bark = setTimeout(() => {
        this.log(`socket-activate run: PID ${proc.pid} sent no WATCHDOG=1 for ${dog / 1000} s: SIGABRT\n`);
        this.terminate(proc, "SIGABRT");
      }, dog);
    };
    if (channel) {
      channel.onMessage = (text) => {
        if (/^READY=1$/m.test(text)) isReady("READY=1");
        if (dog > 0 && (/^WATCHDOG=1$/m.test(text) || (bark === undefined && /^READY=1$/m.test(text)))) arm();
      };
    }
    let proc: ChildProc;
    try {
      proc = this.l.spawn(this.argv(), env, this.fds);
    } catch (e) {
      channel?.close();
      throw e;
    }
    this.live.add(proc);
    void proc.exited.then(() => {
      clearTimeout(bark);
      this.live.delete(proc);
      channel?.close();
      clearTimeout(this.killTimers.get(proc.pid));
      this.killTimers.delete(proc.pid);
    });
    this.log(`socket-activate run: started ${label}${this.o.command.join(" ")} as PID ${proc.pid}\n`);
    return { proc, ready };
  }

  /** The exit of the current COMMAND, following reloads that replace it. */
  private async currentExit(): Promise<ChildExit> {
    for (;;) {
      const c = this.child!;
      const exit = await c.exited;
      if (this.child !== c) continue; // replaced by a reload: the new one is current
      // A stop during a reload: the new COMMAND, never ready, never served;
      // the one that served gives the status (the launcher still waits for both).
      if (this.pending && this.stopSignal === undefined) {
        this.log(
          `socket-activate run: PID ${c.pid} ${
            describeExit(exit)
          } during a reload: PID ${this.pending.pid} takes over\n`,
        );
        this.child = this.pending;
        this.currentStarted = Date.now();
        continue;
      }
      return exit;
    }
  }

  /**
   * A reload with no gap: the new COMMAND starts on the same sockets while the
   * old one serves; once it is ready the old one gets SIGTERM and drains.
   */
  private async reload(why: string): Promise<void> {
    const old = this.child!;
    this.log(`socket-activate run: ${why}: starting a new COMMAND beside PID ${old.pid}\n`);
    const { proc: next, ready } = this.startChild();
    this.pending = next;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const grace = new Promise<string>((r) => {
      timer = setTimeout(() => r(`no READY=1 after ${this.o.graceMs / 1000} s`), this.o.graceMs);
    });
    const outcome = await Promise.race([ready, grace, next.exited]);
    clearTimeout(timer);
    this.pending = undefined;
    if (this.stopSignal !== undefined) return;
    if (typeof outcome !== "string") {
      if (this.child !== next) {
        this.log(
          `socket-activate run: the new COMMAND, PID ${next.pid}, ${
            describeExit(outcome)
          } before it was ready: ` +
            `PID ${old.pid} keeps serving\n`,
        );
      }
      return;
    }
    if (this.child === old) {
      this.child = next;
      this.currentStarted = Date.now();
    }
    if (!this.live.has(old)) return;
    this.log(`socket-activate run: PID ${next.pid} is ready (${outcome}): SIGTERM to PID ${old.pid}\n`);
    void old.exited.then((e) =>
      this.log(`socket-activate run: PID ${old.pid} (replaced) ${describeExit(e)}\n`)
    );
    this.terminate(old);
  }

  /**
   * Start on demand: waits until a connection or datagram waits on a socket
   * ("traffic"), a stop signal ("stop") or a request to start ("woken").
   */
  private async untilTraffic(held: HeldSocket[]): Promise<"traffic" | "stop" | "woken"> {
    const w = this.l.waitForTraffic(held);
    if (typeof w === "string") {
      if (!this.toldWhyNow) this.log(`socket-activate run: starting COMMAND at once: ${w}\n`);
      this.toldWhyNow = true;
      return "traffic";
    }
    this.onDemand = true;
    // A wait off the main thread keeps no runtime alive by itself (Bun's
    // worker is unref'd; Node's UDP handle would, Deno's FFI call too).
    const keepAlive = setInterval(() => {}, 1 << 30);
    const woken = this.sleep(Infinity).then((stop) => (stop ? "stop" as const : "woken" as const));
    try {
      return await Promise.race([w.ready.then(() => "traffic" as const), woken]);
    } finally {
      clearInterval(keepAlive);
      w.cancel();
      this.wake = undefined;
      this.onDemand = false;
    }
  }

  /** Waits `ms` or until woken; true when woken by a stop signal. */
  private sleep(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = ms === Infinity ? undefined : setTimeout(() => {
        this.wake = undefined;
        resolve(false);
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve(this.stopSignal !== undefined);
      };
    });
  }

  private requestRestart(why: string): void {
    if (this.stopSignal !== undefined) return;
    const child = this.child;
    if (!child && this.onDemand) {
      this.log(`socket-activate run: ${why}: no COMMAND runs; the next connection starts one\n`);
      return;
    }
    if (!child) {
      this.log(`socket-activate run: ${why}: starting COMMAND\n`);
      this.wake?.();
      return;
    }
    if (this.o.reload === "overlap") {
      if (this.pending) {
        // Not lost: the new COMMAND may predate the change that asked.
        this.log(`socket-activate run: ${why}: a reload is under way; another follows it\n`);
        this.reloadAgain = why;
      } else void this.reload(why).finally(() => this.reloadQueued());
      return;
    }
    if (this.restartWanted) return;
    this.restartWanted = true;
    this.log(`socket-activate run: ${why}: restarting PID ${child.pid}\n`);
    this.terminate(child);
  }

  private terminate(child: ChildProc, signal = "SIGTERM"): void {
    this.l.kill(child.pid, signal);
    clearTimeout(this.killTimers.get(child.pid));
    this.killTimers.set(
      child.pid,
      setTimeout(() => {
        this.log(
          `socket-activate run: PID ${child.pid} still runs ${
            this.o.stopTimeoutMs / 1000
          } s after ${signal}: SIGKILL\n`,
        );
        this.l.kill(child.pid, "SIGKILL");
      }, this.o.stopTimeoutMs),
    );
  }

  private stop(signal: string): void {
    const first = this.stopSignal === undefined;
    this.stopSignal = signal;
    for (const c of this.live) {
      if (first) this.terminate(c, signal);
      else this.l.kill(c.pid, signal);
    }
    if (!this.child && first) this.wake?.();
    if (first) this.onStop?.();
  }

  private async runAccept(): Promise<number> {
    const o = this.o;
    const children = new Map<number, Promise<ChildExit>>();
    let stopped: ((s: string) => void) | undefined;
    const stopping = new Promise<string>((r) => (stopped = r));
    const onConnection = (c: Accepted) => {
      const env: Record<string, string> = o.inetd
        ? { ...this.env }
        : { ...this.env, LISTEN_FDS: "1", LISTEN_FDNAMES: "connection" };
      if (c.remoteAddr !== undefined) {
        env.REMOTE_ADDR = c.remoteAddr;
        if (c.remotePort !== undefined) env.REMOTE_PORT = String(c.remotePort);
      }
      let child: ChildProc;
      try {
        child = o.inetd ? this.l.spawn(this.argv(), env, [], c.fd) : this.l.spawn(this.argv(), env, [c.fd]);
      } finally {
        c.close(); // the child has its own copy
      }
      const peer = c.remoteAddr === undefined ? "" : ` from ${formatPeer(c.remoteAddr, c.remotePort)}`;
      this.log(`socket-activate run: connection${peer}: started PID ${child.pid}\n`);
      children.set(child.pid, child.exited);
      child.exited.then((exit) => {
        children.delete(child.pid);
        this.log(`socket-activate run: PID ${child.pid} ${describeExit(exit)}\n`);
      });
    };
    let close: () => void;
    try {
      close = await this.l.serve(o.listen, onConnection);
    } catch (e) {
      throw new LaunchError((e as Error).message);
    }
    o.listen.forEach((s) => this.log(`socket-activate run: accepting on ${describeSpec(s)}\n`));
    const offs = (["SIGINT", "SIGTERM"] as const).map((sig) => this.l.onSignal(sig, () => stopped!(sig)));
    // Nothing to reload: each connection starts its own COMMAND. Passed on, as without --restart.
    offs.push(this.l.onSignal("SIGHUP", () => children.forEach((_, pid) => this.l.kill(pid, "SIGHUP"))));
    // The accepting poll runs off the main thread and keeps no runtime alive
    // by itself (Bun's worker is unref'd: the bin under Bun exited at once).
    const keepAlive = setInterval(() => {}, 1 << 30);
    const signal = await stopping;
    clearInterval(keepAlive);
    close();
    for (const pid of children.keys()) this.l.kill(pid, signal);
    await Promise.all(children.values());
    for (const off of offs) off();
    return 0;
  }
}

/** One worker's place in the pool. */
interface Slot {
  child?: ChildProc;
  /** A reload's new worker, until it is ready. */
  next?: ChildProc;
  /** A backoff before the next start. */
  timer?: ReturnType<typeof setTimeout>;
  started: number;
  failures: number;
}

function formatPeer(addr: string, port: number | undefined): string {
  if (port === undefined) return addr;
  return addr.includes(":") ? `[${addr}]:${port}` : `${addr}:${port}`;
}

/** A failure for systemd's Restart=on-failure: a non-zero status, or a signal other than the clean four. */
function isFailure(e: ChildExit): boolean {
  if (e.code !== null) return e.code !== 0;
  return !["SIGHUP", "SIGINT", "SIGTERM", "SIGPIPE"].includes(e.signal ?? "");
}

function exitStatus(e: ChildExit): number {
  if (e.code !== null) return e.code;
  return 128 + (SIGNALS[e.signal ?? ""] ?? 0);
}

function describeExit(e: ChildExit): string {
  return e.code !== null ? `exited with status ${e.code}` : `was killed by ${e.signal}`;
}

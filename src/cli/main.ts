// The command line: `socket-activate [command] [options]`. The echo server
// is imported statically: it is small, and one module hop fewer is worth
// more to its start-up than laziness is to `inspect`.
import { ActivationError } from "../errors.ts";
import { type FdInfo, inspectFd } from "../inspect_fd.ts";
import { listenFds } from "../listen_fds.ts";
import { getRuntime } from "../_runtime.ts";
import { mayReload } from "../_signals.ts";
import { VERSION } from "../version.ts";
import { type EchoOptions, echoServer, Notifier } from "./echo.ts";
import { formatAddr } from "../_net.ts";

const USAGE =
  "usage: socket-activate [echo [OPTIONS] | inspect [--json] | unit NAME --listen ADDR ... -- COMMAND | run -l ADDR ... -- COMMAND]";

const HELP = `socket-activate ${VERSION}: systemd socket activation for Node, Deno and Bun

${USAGE}

Commands (socket-activate COMMAND --help tells more, with examples):
  echo (the default) the echo server of the article, on the socket the service
                     manager passed or on its own port (8888)
  inspect [--json]   print the fds this process was handed (LISTEN_FDS), one line
                     each with what is wrong with it, or as JSON
  unit NAME ...      write NAME.socket and NAME.service for a command, resolved
                     to the program itself (no npx, npm start or shell between
                     systemd and it), with Deno's permissions and the
                     NotifyAccess= that works for the runtime
  run -l ADDR ... -- COMMAND
                     open the sockets and start COMMAND socket-activated, as
                     systemd-socket-activate does; --restart and --watch start
                     it again on the same sockets without refusing a connection

Options:
  -h, --help         this help (socket-activate help COMMAND: that command's)
  -V, --version      the version and the runtime

Exit status: 0 done, 1 failed (the error says why), 2 bad arguments (with the
usage line).

Examples:
  npx socket-activate                                  # echo server on port 8888
  systemd-socket-activate -l 8888 npx socket-activate  # WRONG: npx is a wrapper
  systemd-socket-activate -l 8888 node node_modules/socket-activate/dist/cli.cjs
  systemd-socket-activate -l 8888 deno run -A npm:socket-activate echo
  systemd-socket-activate -l 8080 --fdname=web deno run -A npm:socket-activate inspect
  npx socket-activate unit echo --listen 8888 --notify -- npx socket-activate
  npx socket-activate run -l 8080 --restart --watch src -- node server.js
`;

const ECHO_USAGE =
  "usage: socket-activate echo [--port N] [--host H] [--path P] [--name N] [--idle-exit SECONDS] [--quiet]";

const ECHO_HELP = `${ECHO_USAGE}

The echo server of the article: greets each connection with
"OHAI! systemd socket: true|false", then sends back what it receives with ASCII
letters upper-cased. Serves the socket the service manager passed, or its own.

Options:
  -p, --port N         fallback port (default 8888)
      --host H         fallback host (default 0.0.0.0)
      --path P         fallback unix socket path (or @abstract) instead
      --name N         serve the passed fd named N (LISTEN_FDNAMES)
      --idle-exit S    exit after S seconds without a connection (activated
                       only: the service manager starts it again on the next one)
  -q, --quiet          no line per connection on stderr
  -h, --help           this help

With NOTIFY_SOCKET it sends READY=1, STATUS=<connections served> and
STOPPING=1, and pings WATCHDOG=1 at half of WATCHDOG_USEC. SIGTERM or SIGINT:
stop accepting, let open connections finish (10 s at most), exit 0.
Exit status: 0 stopped, 1 the activation environment or socket is wrong, 2 bad
arguments.

Examples:
  npx socket-activate echo --port 9000                 # its own port
  systemd-socket-activate -l 8888 node node_modules/socket-activate/dist/cli.cjs echo
  systemd-socket-activate -l 8080 -l 9090 --fdname=web:admin deno run -A npm:socket-activate echo --name admin
  systemd-socket-activate -l 8888 bun node_modules/socket-activate/dist/cli.cjs echo --idle-exit 30 --quiet
`;

const INSPECT_USAGE = "usage: socket-activate inspect [--json]";

const INSPECT_HELP = `${INSPECT_USAGE}

Prints the fds this process was handed (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES),
one line each: kind, type, listening or connected, address, close-on-exec. Says
in words what is wrong: not activated and why (LISTEN_PID of a parent: a
wrapper), an fd that is not open or belongs to the runtime, /dev/null where a
socket was due, a connected socket under another name, a missing close-on-exec.

Options:
  --json       {"activated": bool, "fds": [{"fd", "name", "kind", ...}]}, or
               {"error": {"code", "message"}} for a malformed environment
  -h, --help   this help

Exit status: 0 printed, 1 malformed environment, 2 bad arguments.

Examples:
  systemd-socket-activate -l 8080 --fdname=web node node_modules/socket-activate/dist/cli.cjs inspect
  systemd-socket-activate -l /run/app.sock deno run -A npm:socket-activate inspect --json
  LISTEN_FDS=1 LISTEN_PID=1 bun node_modules/socket-activate/dist/cli.cjs inspect   # "names another process"
`;

type Out = (s: string) => void;

/**
 * The commands, their help and their entry. `unit` and `run` are imported
 * only when used, from a file of its own in the npm build
 * (tsup.config.ts): compiling it with the bin cost the echo server's start-up
 * about 0.7 ms in Node.
 */
const COMMANDS: Record<
  string,
  { help: () => Promise<string>; main: (args: string[], out: Out, err: Out) => Promise<number> }
> = {
  echo: { help: () => Promise.resolve(ECHO_HELP), main: echo },
  inspect: {
    help: () => Promise.resolve(INSPECT_HELP),
    main: (a, out, err) => Promise.resolve(inspect(a, out, err)),
  },
  unit: {
    help: () => import("./unit.ts").then((m) => m.UNIT_HELP),
    main: async (a, out, err) => {
      const rt = getRuntime();
      const [{ unitMain }, files] = await Promise.all([import("./unit.ts"), rt.files()]);
      return unitMain(a, out, err, { files, getEnv: rt.getEnv });
    },
  },
  run: {
    help: () => import("./run.ts").then((m) => m.RUN_HELP),
    // The launcher is handed in: run.ts is a bundle of its own in the npm
    // build, with its own (unset) copy of getRuntime()'s registry.
    main: (a, out, err) => import("./run.ts").then((m) => m.runMain(a, out, err, getRuntime().launcher)),
  },
};

/** Runs the CLI; resolves to the process exit status. */
export async function main(args: string[]): Promise<number> {
  const rt = getRuntime();
  const out = (s: string) => rt.write("stdout", s);
  const err = (s: string) => rt.write("stderr", s);
  const [command, ...rest] = args;
  if (command === "-h" || command === "--help" || command === "help") {
    if (rest[0] === undefined) {
      out(HELP);
      return 0;
    }
    if (!Object.hasOwn(COMMANDS, rest[0])) return unknownCommand(rest[0], err);
    out(await COMMANDS[rest[0]].help());
    return 0;
  }
  if (command === "-V" || command === "--version" || command === "version") {
    out(`socket-activate ${VERSION} (${rt.version()})\n`);
    return 0;
  }
  const name = command === undefined || command.startsWith("-") ? "echo" : command;
  const cmdArgs = name === command ? rest : args;
  if (!Object.hasOwn(COMMANDS, name)) return unknownCommand(name, err);
  // --help before any "--" (after it come another program's arguments).
  const dd = cmdArgs.indexOf("--");
  if (cmdArgs.slice(0, dd === -1 ? undefined : dd).some((a) => a === "-h" || a === "--help")) {
    out(await COMMANDS[name].help());
    return 0;
  }
  return COMMANDS[name].main(cmdArgs, out, err);
}

function unknownCommand(command: string, err: Out): number {
  err(
    `socket-activate: unknown command "${command}": the commands are ${
      Object.keys(COMMANDS).join(", ")
    }\n${USAGE}\n`,
  );
  return 2;
}

async function echo(args: string[], _out: Out, err: Out): Promise<number> {
  const opts: EchoOptions = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const value = () => {
      const v = args[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value`);
      return v;
    };
    try {
      if (a === "--port" || a === "-p") {
        const v = value();
        const port = /^\d+$/.test(v) ? Number(v) : NaN;
        if (!(port >= 0 && port <= 65535)) {
          throw new UsageError(`--port "${v}" is not a port number (0-65535)`);
        }
        opts.port = port;
      } else if (a === "--idle-exit") {
        const v = value();
        const seconds = Number(v);
        if (!(seconds > 0) || v.trim() === "") {
          throw new UsageError(`--idle-exit "${v}" is not a number of seconds above 0`);
        }
        opts.idleExit = seconds;
      } else if (a === "--host") opts.host = value();
      else if (a === "--path") opts.path = value();
      else if (a === "--name") opts.name = value();
      else if (a === "--quiet" || a === "-q") opts.log = false;
      else throw new UsageError(`unknown option "${a}" (socket-activate echo --help lists them)`);
    } catch (e) {
      if (!(e instanceof UsageError)) throw e;
      err(`socket-activate echo: ${e.message}\n${ECHO_USAGE}\n`);
      return 2;
    }
  }
  const rt = getRuntime();
  let server: Awaited<ReturnType<typeof echoServer>> | undefined;
  let stopWanted = false;
  const notifier = new Notifier();
  const stop = () => {
    if (!server) return void (stopWanted = true);
    err("echo: stopping: open connections may finish\n");
    notifier.send("STOPPING=1"); // not after a reload: the notifier is off then
    server.close();
  };
  // Before listening: the server accepts from an inherited backlog before
  // listen() resolves, and a SIGTERM then (socket-activate run --restart
  // stopping a child that has just started) would kill it with those
  // connections unanswered.
  const offs = [rt.onSignal("SIGTERM", stop), rt.onSignal("SIGINT", stop)];
  try {
    server = await echoServer(opts, notifier);
  } catch (e) {
    for (const off of offs) off();
    if (!(e instanceof ActivationError)) throw e;
    err(`socket-activate: ${e.code}: ${e.message}\n`);
    return 1;
  }
  // An Accept=yes process serves one connection and listens on nothing.
  const peer = server.remoteAddr;
  const what = peer === undefined
    ? `listening on ${formatAddr(server.addr)}`
    : `serving the connection from ${
      peer.transport === "unix" && !peer.path ? "an unnamed unix socket" : formatAddr(peer)
    }`;
  err(`echo: ${what} (socket from the service manager: ${server.activated})\n`);
  notifier.send("READY=1");
  // SIGHUP: a reload with no gap, as the package's default stop has it (src/_signals.ts).
  if (peer === undefined && mayReload()) {
    offs.push(rt.onSignal("SIGHUP", () => {
      if (stopWanted) return;
      void import("../_reload.ts").then((m) =>
        m.reload((pid) => {
          stopWanted = true;
          notifier.enabled = false; // the successor's STATUS= is the service's now
          err(`echo: PID ${pid} took over: open connections may finish\n`);
          server!.close();
        })
      );
    }));
  }
  if (stopWanted) stop();
  await server.finished;
  for (const off of offs) off();
  await notifier.flush(); // the last notifications go out before the exit
  return 0;
}

class UsageError extends Error {}

function inspect(args: string[], out: Out, err: Out): number {
  let json = false;
  for (const a of args) {
    if (a === "--json") json = true;
    else {
      err(
        `socket-activate inspect: unknown option "${a}" (socket-activate inspect --help)\n${INSPECT_USAGE}\n`,
      );
      return 2;
    }
  }
  const rt = getRuntime();
  // What the environment said, kept for the explanations: listenFds() unsets it.
  const env = {
    pid: rt.getEnv("LISTEN_PID"),
    fds: rt.getEnv("LISTEN_FDS"),
    names: rt.getEnv("LISTEN_FDNAMES"),
    pidfdId: rt.getEnv("LISTEN_PIDFDID"),
  };
  let fds: (FdInfo & { name: string })[];
  try {
    fds = listenFds().map(({ fd, name }) => ({ fd, name, ...withoutFd(inspectFd(fd)) }));
  } catch (e) {
    if (!(e instanceof ActivationError)) throw e;
    if (json) out(JSON.stringify({ error: { code: e.code, message: e.message } }) + "\n");
    else err(`socket-activate inspect: ${e.code}: ${e.message}\n`);
    return 1;
  }
  if (json) {
    out(JSON.stringify({ activated: fds.length > 0, fds }) + "\n");
    return 0;
  }
  if (fds.length === 0) {
    out(`not activated: ${notActivatedReason(env, rt.pid(), () => rt.pidfdId())}\n`);
    return 0;
  }
  out(`activated: ${fds.length} fd(s)\n`);
  for (const f of fds) {
    out(describe(f) + "\n");
    const problem = explain(f);
    if (problem) out(`  ${problem}\n`);
  }
  return 0;
}

function notActivatedReason(
  env: { pid?: string; fds?: string; pidfdId?: string },
  pid: number,
  ownPidfdId: () => bigint | undefined,
): string {
  if (env.pid === undefined && env.fds === undefined) {
    return "no LISTEN_PID or LISTEN_FDS in the environment: the program was not started by a socket unit " +
      "(or something between the service manager and it dropped the variables)";
  }
  if (env.pid === undefined) {
    return `LISTEN_FDS="${env.fds}" but no LISTEN_PID: the service manager always sets both`;
  }
  if (env.fds === undefined) {
    return `LISTEN_PID="${env.pid}" but no LISTEN_FDS: the service manager always sets both`;
  }
  const own = env.pidfdId === undefined ? undefined : ownPidfdId();
  if (own !== undefined && String(own) !== env.pidfdId) {
    return `LISTEN_PIDFDID="${env.pidfdId}" names another process than this one (its pidfd inode id is ${own}, ` +
      `its PID ${pid} is the one LISTEN_PID names): the sockets are for an earlier process of that PID`;
  }
  return `LISTEN_PID="${env.pid}" names another process (this one is ${pid}): the sockets are not for it`;
}

/** What is wrong with a passed fd, in words, or undefined when nothing is. */
export function explain(f: FdInfo & { name: string }): string | undefined {
  if (f.kind === "other" && f.target?.startsWith("anon_inode:")) {
    return `this is not a passed socket but ${f.target}, a descriptor of the runtime itself: LISTEN_FDS ` +
      "promises more fds than were passed (a wrapper may have closed some)";
  }
  if (f.kind === "tcp" && f.listening === false && f.name !== "connection" && f.name !== "unknown") {
    return `a connected socket named "${f.name}": for Accept=yes, systemd names it "connection"; listen() ` +
      "expects a listening socket here";
  }
  if (f.kind === "file" && f.target === "/dev/null") {
    return "/dev/null, not a socket: the program that started this one passed no socket at this position";
  }
  if (f.cloexec === false) {
    return "not marked close-on-exec: child processes of this one would inherit it (listenFds() marks it " +
      "where the runtime can: Node at start-up, Bun always, Deno with --allow-ffi)";
  }
  return undefined;
}

/** One line for a person: `fd 3 "web": tcp stream listening on 127.0.0.1:8080`. */
export function describe(f: FdInfo & { name?: string }): string {
  const parts = [`fd ${f.fd}${f.name === undefined ? "" : ` "${f.name}"`}:`, f.kind];
  if (f.type) parts.push(f.type);
  if (f.listening !== undefined && (f.kind === "tcp" || f.kind === "unix")) {
    parts.push(f.listening ? "listening" : "connected");
  }
  if (f.address !== undefined) {
    const host = f.family === "ipv6" ? `[${f.address}]` : f.address;
    parts.push("on " + (f.port === undefined ? host || "(unnamed)" : `${host}:${f.port}`));
  } else if (f.target !== undefined && f.kind !== "other") parts.push(f.target);
  else if (f.target !== undefined) parts.push(`(${f.target})`);
  if (f.cloexec === false) parts.push("(inheritable: no FD_CLOEXEC)");
  return parts.join(" ");
}

function withoutFd(info: FdInfo): Omit<FdInfo, "fd"> {
  const { fd: _fd, ...rest } = info;
  return rest;
}

// `socket-activate unit`: writes NAME.socket and NAME.service for a command,
// resolved to what systemd must exec so that the program itself, not a
// wrapper, is the process LISTEN_PID names. Loaded only by that command, and
// built into a file of its own (tsup.config.ts): it shares no module state
// with the CLI, which hands it what it needs of the runtime.
import type { Files } from "../_runtime.ts";
import { join, resolvePath } from "./posix_path.ts";
import { hasControl } from "./unit_quote.ts";
import { type Ctx, locate, Refusal, resolveCommand, type Resolved } from "./unit_resolve.ts";
import { type Options, renderService, renderSocket } from "./unit_write.ts";

/** The one-line usage of `socket-activate unit`. */
export const UNIT_USAGE = "usage: socket-activate unit NAME --listen ADDR [--listen ADDR ...] [--datagram] " +
  "[--accept] [--notify] [--reload] [--watchdog SEC] [--user USER] [--fdname NAME] [--setenv NAME=VALUE] " +
  "[--out DIR [--force]] [--podman IMAGE] -- COMMAND [ARGS...]";

/** `socket-activate unit --help`. */
export const UNIT_HELP = `${UNIT_USAGE}

Writes NAME.socket and NAME.service (NAME@.service with --accept) for COMMAND,
or prints both. ExecStart= is what systemd must exec so that LISTEN_PID names
the program itself:
  - absolute paths: COMMAND is looked up in PATH now, and script arguments of
    node, deno and bun are made absolute (systemd runs services in /);
  - no wrapper: npx, bunx, npm/yarn/pnpm start or run, bun run SCRIPT, deno
    task, tsx and a shell without exec all start the program as their child,
    so LISTEN_PID names the wrapper and the program silently opens its own
    port. Where the real command is unambiguous (an installed package's bin, a
    package.json script that is one plain command, tsx FILE, sh -c "node x")
    it is written instead, saying so on stderr; otherwise the command is
    refused (exit 2) with the reason;
  - Deno: deno run gets --allow-env (LISTEN_*, NOTIFY_SOCKET, WATCHDOG_*) and
    --allow-ffi (close-on-exec, fd checks, sd_notify) when they are missing;
    no --allow-net: serving an inherited socket needs none.

Options:
  -l, --listen ADDR   PORT, IPV4:PORT, [IPV6]:PORT, /path or @abstract
                      (repeatable: one ListenStream= each)
  -d, --datagram      ListenDatagram= (UDP or unix datagram) instead
  -a, --accept        Accept=yes: one NAME@.service instance per connection
                      (the connected socket is fd 3)
      --notify        Type=notify, with the NotifyAccess= that works for the
                      runtime: "all" for Node, which sends through systemd-notify
                      (its PID, not Node's, when not root); the default "main"
                      for Deno and Bun, which send from the service's own PID
      --reload        --notify and ExecReload=kill -HUP $MAINPID: on systemctl
                      reload the server starts a successor on the same
                      sockets and hands over once it is ready (no gap); Deno
                      gets --allow-run for it
      --watchdog SEC  WatchdogSec=SEC (the package pings at half of it)
      --user USER     User=USER
      --fdname NAME   FileDescriptorName=NAME (the default name is NAME.socket)
      --podman IMAGE  run IMAGE in a container with no network of its own:
                      ExecStart=podman run --rm --network=none IMAGE [ARGS],
                      with the service's notify socket mounted in for
                      --notify and --watchdog (podman's own --sdnotify
                      forwards READY=1 only; -e WATCHDOG_USEC passes the
                      interval) and --cgroups=split (the container stays in
                      the service's cgroup, where systemd takes its
                      messages); COMMAND is optional (the image's), and is run as
                      given, inside the image
  -E, --setenv N=V    Environment=N=V (repeatable)
      --out DIR       write the files into DIR instead of printing them
      --force         overwrite existing files in DIR
  -h, --help          this help

Exit status: 0 written, 1 the files could not be written, 2 bad arguments or
a command that cannot work under socket activation.

Examples:
  socket-activate unit echo -l 8888 -- node node_modules/socket-activate/dist/cli.cjs
  socket-activate unit echo -l 8888 --notify --watchdog 10 -- npx socket-activate
  socket-activate unit api -l 127.0.0.1:8080 -l /run/api.sock --fdname web -- deno run main.ts
  socket-activate unit conn -l 9000 --accept -- bun run server.ts
  socket-activate unit web -l 80 --user www-data --out /etc/systemd/system -- npm start
  socket-activate unit echo -l 8888 --notify --podman localhost/echo
`;

/**
 * A reload starts the successor through /bin/sh and signals its parent
 * (SIGUSR2) when ready: Deno needs --allow-run for both, and the whole
 * environment (--allow-env without a list) to pass on.
 */
function denoMayReload(r: Resolved, ctx: Ctx): void {
  const flags = r.argv.slice(2);
  if (flags.some((f) => f === "-A" || f === "--allow-all")) return;
  if (flags.some((f) => f.startsWith("--allow-env="))) {
    throw new Refusal(
      "--reload with deno's --allow-env=LIST: the successor gets this process's whole environment, which a " +
        "scoped --allow-env cannot read; give --allow-env without a list",
    );
  }
  if (flags.some((f) => f === "--allow-run" || f.startsWith("--allow-run="))) return;
  const at = r.argv.indexOf("--allow-ffi");
  r.argv.splice(at === -1 ? 2 : at + 1, 0, "--allow-run");
  ctx.notes.push(
    "--reload: added --allow-run to deno run: the reload starts the successor and it signals back",
  );
}

/** Runs `socket-activate unit ARGS` (--help is cli.ts's); resolves to the exit status. */
export function unitMain(
  args: string[],
  out: (s: string) => void,
  err: (s: string) => void,
  host: { files: Files; getEnv(key: string): string | undefined },
): number {
  const { files } = host;
  let o: Options;
  let r: Resolved;
  const ctx: Ctx = {
    files,
    cwd: files.cwd(),
    path: (host.getEnv("PATH") ?? "/usr/local/bin:/usr/bin:/bin").split(":").filter((d) => d.startsWith("/")),
    notes: [],
    env: [],
    depth: 0,
  };
  try {
    o = parseArgs(args);
    r = o.podman === undefined ? resolveCommand(o.command, ctx) : podmanCommand(o, ctx);
    const unixDgram = o.datagram && o.listen.some((l) => /^[/@]/.test(l));
    if (r.runtime === "node" && (o.notify || o.watchdog !== undefined || unixDgram)) {
      // The flags that can turn node:ffi off, and SOCKET_ACTIVATE_FFI=0 in the unit's environment.
      const flags = r.argv.slice(1).filter((a) =>
        /^--(no-)?experimental-ffi$|^--(experimental-)?permission$|^--allow-ffi$/.test(a)
      );
      const off = [...ctx.env, ...o.env].some((e) => /^SOCKET_ACTIVATE_FFI=0$/.test(e));
      r.nodeFfi = !off && files.nodeHasFfi(r.argv[0], flags);
    }
    if (unixDgram && r.runtime === "node" && !r.nodeFfi) {
      ctx.notes.push(
        `${
          r.argv[0]
        } has no node:ffi (Node 22 and 24), so no unix datagram socket (its dgram is UDP only): ` +
          "a Node program gets ENOTSUP from listenDatagram() on it; Node 26.9 and later serve it",
      );
    }
    if (o.reload && r.runtime === "deno") denoMayReload(r, ctx);
    if (o.reload && r.runtime === undefined) {
      ctx.notes.push(
        "--reload: ExecReload= sends SIGHUP; a program that does not use socket-activate must reload on it itself",
      );
    }
    if (o.notify && r.runtime === undefined && o.podman === undefined) {
      ctx.notes.push(
        "Type=notify: the program must send READY=1 to NOTIFY_SOCKET itself, or systemd stops it after " +
          "TimeoutStartSec=",
      );
    }
  } catch (e) {
    if (!(e instanceof Refusal)) throw e;
    err(`socket-activate unit: ${e.message}\n${UNIT_USAGE}\n`);
    return 2;
  }
  for (const n of ctx.notes) err(`socket-activate unit: note: ${n}\n`);
  const service = o.accept ? `${o.name}@.service` : `${o.name}.service`;
  const units: [string, string][] = [
    [`${o.name}.socket`, renderSocket(o)],
    [service, renderService(o, r, ctx)],
  ];
  if (o.out === undefined) {
    out(units.map(([file, text]) => `# ${file}\n${text}`).join("\n"));
    return 0;
  }
  const dir = resolvePath(ctx.cwd, o.out);
  const st = files.stat(dir);
  if (st?.kind !== "dir") {
    err(`socket-activate unit: --out "${o.out}" is not a directory: create it or name another\n`);
    return 1;
  }
  if (!o.force) {
    const existing = units.map(([f]) => join(dir, f)).filter((p) => files.stat(p) !== undefined);
    if (existing.length > 0) {
      const exist = existing.length === 1 ? "exists" : "exist";
      err(`socket-activate unit: ${existing.join(" and ")} already ${exist}: pass --force to overwrite\n`);
      return 1;
    }
  }
  for (const [file, text] of units) {
    const p = join(dir, file);
    try {
      files.writeText(p, text, o.force);
    } catch (e) {
      err(`socket-activate unit: cannot write ${p}: ${(e as Error).message}\n`);
      return 1;
    }
    out(`${p}\n`);
  }
  err(
    `socket-activate unit: start it with: systemctl daemon-reload && systemctl enable --now ${o.name}.socket\n`,
  );
  return 0;
}

function parseArgs(args: string[]): Options {
  const o: Options = {
    name: "",
    listen: [],
    datagram: false,
    accept: false,
    notify: false,
    reload: false,
    env: [],
    force: false,
    command: [],
  };
  let name: string | undefined;
  for (let i = 0; i < args.length; i++) {
    let a = args[i];
    let inline: string | undefined;
    const eq = a.indexOf("=");
    if (a.startsWith("--") && eq > 2) {
      inline = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    const value = () => {
      const v = inline ?? args[++i];
      if (v === undefined) throw new Refusal(`${a} needs a value`);
      return v;
    };
    if (inline !== undefined && ["--datagram", "--accept", "--notify", "--reload", "--force"].includes(a)) {
      throw new Refusal(`${a} takes no value (got "${inline}")`);
    }
    if (a === "--") {
      o.command = args.slice(i + 1);
      break;
    } else if (a === "-l" || a === "--listen") o.listen.push(listenValue(value()));
    else if (a === "-d" || a === "--datagram") o.datagram = true;
    else if (a === "-a" || a === "--accept") o.accept = true;
    else if (a === "--notify") o.notify = true;
    else if (a === "--reload") o.notify = o.reload = true;
    else if (a === "--watchdog") o.watchdog = seconds(value());
    else if (a === "--user") o.user = userName(value());
    else if (a === "--fdname") o.fdname = fdName(value());
    else if (a === "-E" || a === "--setenv") o.env.push(assignment(value()));
    else if (a === "--out") o.out = value();
    else if (a === "--force") o.force = true;
    else if (a === "--podman") o.podman = imageName(value());
    else if (a.startsWith("-") && a !== "-") {
      throw new Refusal(`unknown option "${a}" (socket-activate unit --help lists them)`);
    } else if (name === undefined) name = unitName(a);
    else {
      // The first word after NAME starts the command, as in systemd-socket-activate.
      o.command = args.slice(i);
      break;
    }
  }
  if (name === undefined) throw new Refusal("give the unit's NAME (for example: echo)");
  o.name = name;
  if (o.listen.length === 0) {
    throw new Refusal("give at least one --listen ADDR (for example: --listen 8080)");
  }
  if (o.command.length === 0 && o.podman === undefined) {
    throw new Refusal("give the COMMAND after -- (for example: -- node server.js)");
  }
  if (new Set(o.listen).size !== o.listen.length) {
    throw new Refusal("the same --listen address is given twice");
  }
  if (o.accept && o.datagram) {
    throw new Refusal("--accept with --datagram: datagram sockets have no connections to accept; drop one");
  }
  if (o.reload && (o.accept || o.podman !== undefined)) {
    throw new Refusal(
      `--reload with ${o.accept ? "--accept" : "--podman"}: ${
        o.accept
          ? "each connection has a process of its own, with nothing to reload"
          : "a successor would start inside the container, which podman does not track as the service"
      }; drop one`,
    );
  }
  if (o.force && o.out === undefined) {
    throw new Refusal("--force without --out: nothing is written to overwrite");
  }
  return o;
}

/**
 * ExecStart= for --podman: podman (found in PATH now) runs the image with no
 * network; the sockets reach the container through podman, LISTEN_PID=1.
 * For Type=notify the service's notify socket is mounted in: podman's own
 * --sdnotify=container forwards READY=1 and nothing after it (podman 4.3).
 * systemd takes a message only from a process in the service's cgroup (or
 * below it), and podman's default (--cgroups=enabled) puts the container in a
 * scope of its own under machine.slice, where its messages are dropped (the
 * unit never becomes active): --cgroups=split keeps the container in a
 * sub-cgroup of the service's, as Quadlet does (docs/containers.md).
 * For the watchdog, podman passes none of systemd's variables: -e
 * WATCHDOG_USEC passes the interval, and WATCHDOG_PID (podman's PID, not the
 * server's) is left out, so that sd_watchdog_enabled() takes it for any PID.
 */
function podmanCommand(o: Options, ctx: Ctx): Resolved {
  const podman = locate("podman", ctx).found;
  const notify = o.notify || o.watchdog !== undefined
    ? [
      "--cgroups=split",
      "--sdnotify=ignore",
      "-v",
      "/run/systemd/notify:/run/systemd/notify",
      "-e",
      "NOTIFY_SOCKET=/run/systemd/notify",
      ...(o.watchdog !== undefined ? ["-e", "WATCHDOG_USEC"] : []),
    ]
    : [];
  return { argv: [podman, "run", "--rm", "--network=none", ...notify, o.podman!, ...o.command] };
}

function imageName(v: string): string {
  if (v === "" || v.startsWith("-") || /\s/.test(v) || hasControl(v)) {
    throw new Refusal(`--podman "${v}" is not an image name (for example: localhost/echo)`);
  }
  return v;
}

/** NAME as a unit name prefix: systemd's unit_name_is_valid, no template. */
function unitName(v: string): string {
  const suffix = /\.(socket|service)$/.exec(v);
  if (suffix) {
    throw new Refusal(
      `NAME "${v}" has a suffix: give the name alone ("${v.slice(0, suffix.index)}"), both files get theirs`,
    );
  }
  if (!/^[A-Za-z0-9:_.\\-]+$/.test(v) || v.length > 240) {
    throw new Refusal(
      `NAME "${v}" is not a unit name: use letters, digits and ":_.-\\" (no "@", at most 240 characters)`,
    );
  }
  return v;
}

/** A --listen ADDR as systemd's ListenStream=/ListenDatagram= takes it. */
function listenValue(v: string): string {
  const port = (p: string) => {
    const n = /^\d{1,5}$/.test(p) ? Number(p) : NaN;
    if (!(n >= 1 && n <= 65535)) {
      throw new Refusal(`--listen "${v}": "${p}" is not a port from 1 to 65535`);
    }
    return n;
  };
  if (/^\d+$/.test(v)) return String(port(v));
  let m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3}):(\d*)$/.exec(v);
  if (m) {
    if (m.slice(1, 5).some((o) => Number(o) > 255)) {
      throw new Refusal(`--listen "${v}" is not an IPv4 address`);
    }
    return `${m.slice(1, 5).map(Number).join(".")}:${port(m[5])}`;
  }
  m = /^\[([0-9A-Fa-f:.]+)(%[A-Za-z0-9_.-]+)?\]:(\d*)$/.exec(v);
  if (m) {
    if (!m[1].includes(":")) throw new Refusal(`--listen "${v}" is not an IPv6 address`);
    return `[${m[1]}${m[2] ?? ""}]:${port(m[3])}`;
  }
  if (v.startsWith("/") || v.startsWith("@")) {
    // sun_path holds 108 bytes, a path's terminating NUL included.
    if (new TextEncoder().encode(v).length > 107) {
      throw new Refusal(`--listen "${v}" is longer than a unix socket address can be (107 bytes)`);
    }
    if (v.length < 2 || hasControl(v)) {
      throw new Refusal(`--listen "${v}" is not a unix socket address`);
    }
    return v;
  }
  if (/^[^/:]+:\d+$/.test(v)) {
    const p = v.slice(v.lastIndexOf(":") + 1);
    throw new Refusal(
      `--listen "${v}": systemd listens on IP addresses, not host names: use 127.0.0.1:${p}, [::1]:${p} ` +
        `or ${p} (every address)`,
    );
  }
  if (/^[0-9A-Fa-f]*:[0-9A-Fa-f:]*:\d+$/.test(v)) {
    throw new Refusal(`--listen "${v}": put an IPv6 address in brackets ([::1]:8080)`);
  }
  throw new Refusal(
    `--listen "${v}" is not PORT, IPV4:PORT, [IPV6]:PORT, an absolute /path or an @abstract name` +
      (v.includes("/") ? " (a unix socket path must be absolute)" : ""),
  );
}

function seconds(v: string): string {
  if (!/^\d+(\.\d+)?$/.test(v) || Number(v) === 0) {
    throw new Refusal(`--watchdog "${v}" is not a number of seconds above 0 (WatchdogSec=0 turns it off)`);
  }
  return v;
}

// systemd's valid_user_group_name in its relaxed form, or a numeric UID.
function userName(v: string): string {
  if (/^\d+$/.test(v) ? Number(v) >= 4294967295 : !/^[A-Za-z_][A-Za-z0-9_.-]{0,30}\$?$/.test(v)) {
    throw new Refusal(`--user "${v}" is not a user name or numeric UID`);
  }
  return v;
}

// systemd's fdname_is_valid: printable ASCII without ":", at most 255 bytes.
function fdName(v: string): string {
  if (v.length === 0 || v.length > 255 || !/^[\x20-\x7e]*$/.test(v) || v.includes(":")) {
    throw new Refusal(
      `--fdname "${v}" is not a fd name: 1 to 255 printable ASCII characters without ":" ` +
        "(one socket unit gives all its sockets one name)",
    );
  }
  return v;
}

function assignment(v: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(v) || hasControl(v)) {
    throw new Refusal(`--setenv "${v}" is not NAME=VALUE`);
  }
  return v;
}

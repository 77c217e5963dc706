// `socket-activate unit`: COMMAND resolved to what systemd must exec, so that
// the program itself, not a wrapper, is the process LISTEN_PID names.

import type { Files } from "../_runtime.ts";
import { basename, dirname, join, resolvePath } from "./posix_path.ts";

/** Bad arguments or a command that cannot work: exit status 2. */
export class Refusal extends Error {}

/** The environment variables this package reads: a scoped --allow-env needs them all. */
const DENO_ENV = [
  "LISTEN_PID",
  "LISTEN_PIDFDID",
  "LISTEN_FDS",
  "LISTEN_FDNAMES",
  "NOTIFY_SOCKET",
  "WATCHDOG_USEC",
  "WATCHDOG_PID",
];

/** Programs that restart or supervise theirs as a child, with the reason. */
const SUPERVISORS: Record<string, string> = {
  nodemon: "restarts the program as its child on every change",
  "ts-node-dev": "restarts the program as its child on every change",
  "node-dev": "restarts the program as its child on every change",
  supervisor: "restarts the program as its child",
  pm2: "runs the program as a child of its own daemon",
  forever: "runs the program as its child",
  concurrently: "runs the programs as its children",
  "npm-run-all": "runs the scripts as its children",
  "run-p": "runs the scripts as its children",
  "run-s": "runs the scripts as its children",
  dotenv: "(dotenv-cli) runs the program as its child; use Environment= or EnvironmentFile= instead",
};

const SHELLS = new Set(["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox"]);

export interface Ctx {
  files: Files;
  cwd: string;
  /** PATH, absolute entries only: systemd's own PATH is not the caller's. */
  path: string[];
  /** Said on stderr: every rewrite of the command, and why. */
  notes: string[];
  /** Environment= lines (NAME=VALUE), from script assignments and cross-env. */
  env: string[];
  workingDirectory?: string;
  depth: number;
}

export interface Resolved {
  argv: string[];
  /** The JavaScript runtime that runs the program, when it is one. */
  runtime?: "node" | "deno" | "bun";
  /** For Node: whether that Node sends sd_notify itself over node:ffi (26.9+). */
  nodeFfi?: boolean;
}

export function resolveCommand(argv: string[], ctx: Ctx): Resolved {
  if (++ctx.depth > 8) throw new Refusal(`"${argv.join(" ")}" leads through too many wrappers to follow`);
  const [prog, ...rest] = argv;
  if (prog === "exec") return resolveCommand(rest, ctx);
  if (/^[A-Za-z_][A-Za-z0-9_]*=/.test(prog)) {
    // A shell's or an npm script's leading NAME=VALUE: systemd's Environment=.
    ctx.env.push(prog);
    return resolveCommand(rest, ctx);
  }
  // A supervisor is refused by name, installed or not: the reason matters more than its path.
  const { found, real } = Object.hasOwn(SUPERVISORS, prog) ? { found: prog, real: prog } : locate(prog, ctx);
  const id = identify(found, real);
  const exe = programPath(found, real);
  switch (id) {
    case "node":
      return resolveNode(exe, rest, ctx);
    case "deno":
      return resolveDeno(exe, rest, ctx);
    case "bun":
      return resolveBun(exe, rest, ctx);
    case "bunx":
      return resolveRunner("bunx", rest, ctx, exe);
    case "npx":
    case "pnpx":
      return resolveRunner(id, rest, ctx);
    case "npm":
    case "yarn":
    case "pnpm":
      return resolvePackageManager(id, rest, ctx);
    case "tsx":
      return resolveTsx(real, rest, ctx);
    case "env":
    case "cross-env":
      return resolveEnv(id, rest, ctx);
  }
  if (SHELLS.has(id)) return resolveShell(id, exe, rest, ctx);
  if (Object.hasOwn(SUPERVISORS, id)) {
    throw new Refusal(
      `${id} ${SUPERVISORS[id]}: LISTEN_PID would name ${id} and the program would fall back to its own ` +
        "port silently; name the program itself after -- and leave restarts to systemd (Restart=)",
    );
  }
  const head = ctx.files.readHead(real, 512);
  if (head !== undefined && head[0] === 0x23 && head[1] === 0x21) {
    return resolveScript(exe, real, head, rest, ctx);
  }
  return { argv: [exe, ...rest] };
}

/** COMMAND's program, found as a shell would: by path, or in PATH. */
export function locate(prog: string, ctx: Ctx): { found: string; real: string } {
  if (prog === undefined || prog === "") throw new Refusal("the COMMAND is empty");
  const candidates = prog.includes("/") ? [resolvePath(ctx.cwd, prog)] : ctx.path.map((d) => join(d, prog));
  for (const c of candidates) {
    const st = ctx.files.stat(c);
    if (st?.kind === "file" && st.executable) return { found: c, real: ctx.files.realPath(c) ?? c };
    if (prog.includes("/")) {
      throw new Refusal(
        st === undefined
          ? `COMMAND "${prog}" does not exist (${c})`
          : `COMMAND "${prog}" is not an executable file (${c}): name the program that runs it`,
      );
    }
  }
  throw new Refusal(`"${prog}" is not in PATH (${ctx.path.join(":")}): give its absolute path`);
}

/** What the program is, by the name it is called by, else by its real file. */
function identify(found: string, real: string): string {
  const called = basename(found).replace(/\.exe$/, "");
  const known = (n: string) =>
    n === "node" || n === "nodejs"
      ? "node"
      : ["deno", "bun", "bunx", "npx", "pnpx", "npm", "yarn", "pnpm", "tsx", "env", "cross-env"].includes(
          n,
        ) ||
          SHELLS.has(n) || Object.hasOwn(SUPERVISORS, n)
      ? n
      : undefined;
  // By the called name first: bun behaves as bunx when called bunx, whatever file it is.
  const byName = known(called);
  if (byName) return byName;
  const file = basename(real).replace(/\.exe$/, "");
  const byFile = known(file);
  if (byFile) return byFile;
  if (/\/npm\/bin\/npx-cli\.js$/.test(real)) return "npx";
  if (/\/npm\/bin\/npm-cli\.js$/.test(real)) return "npm";
  if (/\/tsx\/dist\/cli\.[cm]?js$/.test(real)) return "tsx";
  if (/\/yarn\/bin\/yarn(\.c?js)?$/.test(real)) return "yarn";
  if (/\/pnpm\/bin\/pnpm\.c?js$/.test(real)) return "pnpm";
  return called;
}

// node_modules/.bin holds links that `npm install` rewrites; the file they
// point at is what runs.
function programPath(found: string, real: string): string {
  return found.includes("/node_modules/.bin/") ? real : found;
}

const NODE_VALUE = new Set([
  "-r",
  "--require",
  "--import",
  "--loader",
  "--experimental-loader",
  "-C",
  "--conditions",
  "--input-type",
  "--env-file",
  "--title",
  "--inspect-port",
  "--disable-warning",
]);
const NODE_MODULE = new Set(["-r", "--require", "--import", "--loader", "--experimental-loader"]);

function resolveNode(exe: string, args: string[], ctx: Ctx): Resolved {
  const out: string[] = [exe];
  let i = 0;
  let evaluates = false;
  for (; i < args.length; i++) {
    let a = args[i];
    if (a === "--") {
      i++;
      break;
    }
    if (!a.startsWith("-") || a === "-") break;
    if (a === "--watch" || a.startsWith("--watch-path") || a === "--watch-preserve-output") {
      throw new Refusal(
        `node ${a} runs the program in a child process and restarts it: LISTEN_PID would name the watcher; ` +
          "drop it (systemd restarts the service, Restart=)",
      );
    }
    if (a === "-e" || a === "--eval" || a === "-p" || a === "--print") {
      out.push(a, args[++i] ?? "");
      evaluates = true;
      continue;
    }
    const eq = a.startsWith("--") ? a.indexOf("=") : -1;
    const inline = eq > 0;
    if (inline) a = a.slice(0, eq);
    if (!inline && !NODE_VALUE.has(a)) {
      out.push(a);
      continue;
    }
    let v = inline ? args[i].slice(eq + 1) : args[++i];
    if (v === undefined) throw new Refusal(`node option ${a} needs a value`);
    if (NODE_MODULE.has(a)) {
      v = moduleSpecifier(v, a === "-r" || a === "--require" ? "require" : "import", ctx);
    } else if (a === "--env-file") v = resolvePath(ctx.cwd, v);
    if (inline) out.push(`${a}=${v}`);
    else out.push(a, v);
  }
  if (!evaluates) {
    const script = args[i++];
    if (script === undefined) {
      throw new Refusal("node without a script starts a REPL: give the program's entry file");
    }
    out.push(existingFile(script, "node's script", ctx));
  }
  return { argv: [...out, ...args.slice(i)], runtime: "node" };
}

/**
 * A --import/--require specifier: relative paths made absolute; a package
 * name resolved to its entry file now, since Node resolves it from the
 * working directory, which is / under systemd.
 */
function moduleSpecifier(spec: string, kind: "import" | "require", ctx: Ctx): string {
  if (spec.startsWith("./") || spec.startsWith("../")) return resolvePath(ctx.cwd, spec);
  if (/^(\/|[a-z]+:)/.test(spec)) return spec;
  const entry = packageEntry(spec, ctx.cwd, ["node", kind], ctx.files);
  if (entry) return entry;
  ctx.workingDirectory = ctx.cwd;
  ctx.notes.push(
    `"${spec}" is resolved from the working directory, and it is not an installed package here: ` +
      `WorkingDirectory=${ctx.cwd}`,
  );
  return spec;
}

/** A package's entry as Node's resolver finds it (exports, else main), from `from` upward. */
function packageEntry(spec: string, from: string, conditions: string[], files: Files): string | undefined {
  const parts = spec.split("/");
  const nameLength = spec.startsWith("@") ? 2 : 1;
  const name = parts.slice(0, nameLength).join("/");
  const sub = parts.length > nameLength ? "./" + parts.slice(nameLength).join("/") : ".";
  for (let dir = from;; dir = dirname(dir)) {
    const pkgDir = join(dir, "node_modules", name);
    const text = files.readText(join(pkgDir, "package.json"));
    if (text !== undefined) {
      let pj: { exports?: unknown; main?: string };
      try {
        pj = JSON.parse(text);
      } catch {
        return undefined;
      }
      let target: string | undefined;
      if (pj.exports !== undefined) {
        const e = pj.exports as Record<string, unknown>;
        const map = typeof e === "object" && e !== null && !Array.isArray(e) &&
            Object.keys(e).some((k) => k.startsWith("."))
          ? e[sub]
          : sub === "."
          ? e
          : undefined;
        target = pickCondition(map, conditions);
      } else target = sub === "." ? pj.main ?? "index.js" : sub;
      const p = target === undefined ? undefined : resolvePath(pkgDir, target);
      return p !== undefined && files.stat(p)?.kind === "file" ? p : undefined;
    }
    if (dir === "/") return undefined;
  }
}

function pickCondition(t: unknown, conditions: string[]): string | undefined {
  if (typeof t === "string") return t;
  if (Array.isArray(t)) {
    for (const x of t) {
      const r = pickCondition(x, conditions);
      if (r) return r;
    }
    return undefined;
  }
  if (typeof t === "object" && t !== null) {
    for (const [k, v] of Object.entries(t)) {
      if (k === "default" || conditions.includes(k)) {
        const r = pickCondition(v, conditions);
        if (r) return r;
      }
    }
  }
  return undefined;
}

function resolveTsx(real: string, args: string[], ctx: Ctx): Resolved {
  if (args[0] === "watch") {
    throw new Refusal(
      "tsx watch restarts the program in a child process: LISTEN_PID would name tsx; " +
        "name the program without watch (systemd restarts the service, Restart=)",
    );
  }
  if (args.length === 0 || args[0].startsWith("-")) {
    throw new Refusal(
      "tsx runs the program in a child node process, so LISTEN_PID would name tsx: write " +
        "node --import tsx FILE after -- instead (tsx's loader in the program's own process)",
    );
  }
  let pkgDir = dirname(real);
  while (
    pkgDir !== "/" && !/"name"\s*:\s*"tsx"/.test(ctx.files.readText(join(pkgDir, "package.json")) ?? "")
  ) {
    pkgDir = dirname(pkgDir);
  }
  const loader = pkgDir === "/"
    ? undefined
    : packageEntry("tsx", dirname(dirname(pkgDir)), ["node", "import"], ctx.files);
  if (loader === undefined) {
    throw new Refusal(
      "tsx runs the program in a child node process, so LISTEN_PID would name tsx, and its loader was not " +
        `found next to ${real}: write node --import tsx FILE after -- instead`,
    );
  }
  ctx.notes.push(
    `tsx runs the program in a child node process (LISTEN_PID would name tsx): wrote node --import ${loader}, ` +
      "tsx's loader in the program's own process, instead",
  );
  return resolveCommand(["node", "--import", loader, ...args], ctx);
}

const DENO_VALUE = new Set([
  "-c",
  "--config",
  "--import-map",
  "--lock",
  "--cert",
  "--location",
  "--seed",
  "-L",
  "--log-level",
]);

function resolveDeno(exe: string, args: string[], ctx: Ctx): Resolved {
  const sub = args[0];
  let i = 0;
  if (sub === "run") i = 1;
  else if (sub === "serve") {
    throw new Refusal(
      "deno serve binds its own port (--port) and never takes the socket systemd passes: " +
        "use deno run with the package's listen()",
    );
  } else if (sub === "task") return resolveTask("deno task", args.slice(1), ctx);
  else if (sub === undefined) throw new Refusal("deno without a script starts a REPL: give deno run SCRIPT");
  else if (!sub.startsWith("-") && !/[./]/.test(sub)) {
    throw new Refusal(`deno ${sub} does not run a server: use deno run [flags] SCRIPT`);
  }
  const flags: string[] = [];
  for (; i < args.length; i++) {
    const a = args[i];
    if (a === "--") {
      i++;
      break;
    }
    if (!a.startsWith("-")) break;
    flags.push(a);
    if (DENO_VALUE.has(a)) {
      const v = args[++i];
      if (v === undefined) throw new Refusal(`deno option ${a} needs a value`);
      flags.push(/^(-c|--config|--import-map|--lock|--cert)$/.test(a) ? resolvePath(ctx.cwd, v) : v);
    } else if (/^--(config|import-map|lock|cert|env-file)=/.test(a)) {
      const eq = a.indexOf("=");
      flags[flags.length - 1] = `${a.slice(0, eq)}=${resolvePath(ctx.cwd, a.slice(eq + 1))}`;
    }
  }
  const script = args[i++];
  if (script === undefined) throw new Refusal("deno run without a script: give the program's entry file");
  const entry = /^(https?|jsr|npm|file|data):/.test(script)
    ? script
    : existingFile(script, "deno's script", ctx);
  const perms = denoPermissions(flags, ctx);
  return { argv: [exe, "run", ...perms, entry, ...args.slice(i)], runtime: "deno" };
}

/**
 * The flags with what the package needs in Deno added: --allow-env (it reads
 * LISTEN_*, NOTIFY_SOCKET, WATCHDOG_*; without it Deno throws at the first
 * read) and --allow-ffi (libc's fcntl marks the sockets close-on-exec,
 * getsockopt checks them, sendto notifies systemd; without it children
 * inherit the sockets, the fds are served unchecked and notify fails).
 */
function denoPermissions(flags: string[], ctx: Ctx): string[] {
  if (flags.some((f) => f === "-A" || f === "--allow-all")) return flags;
  for (const f of flags) {
    if (/^--deny-(env|ffi)/.test(f)) {
      throw new Refusal(`deno ${f} takes away what socket-activate needs (LISTEN_* and libc): drop it`);
    }
  }
  const out = [...flags];
  const added: string[] = [];
  const env = out.findIndex((f) => f === "--allow-env" || f.startsWith("--allow-env="));
  if (env === -1) {
    out.unshift("--allow-env");
    added.push("--allow-env");
  } else if (out[env].startsWith("--allow-env=")) {
    const have = out[env].slice("--allow-env=".length).split(",");
    const missing = DENO_ENV.filter((v) => !have.includes(v));
    if (missing.length > 0) {
      out[env] = `--allow-env=${[...have.filter((v) => v !== ""), ...missing].join(",")}`;
      added.push(`${missing.join(",")} to --allow-env`);
    }
  }
  if (!out.some((f) => f === "--allow-ffi" || f.startsWith("--allow-ffi="))) {
    out.splice(out.findIndex((f) => f.startsWith("--allow-env")) + 1, 0, "--allow-ffi");
    added.push("--allow-ffi");
  }
  if (added.length > 0) {
    ctx.notes.push(
      `added ${
        added.join(" and ")
      } to deno run: socket-activate reads LISTEN_*, NOTIFY_SOCKET and WATCHDOG_* ` +
        "(--allow-env) and marks the sockets close-on-exec, checks them and notifies systemd through libc " +
        "(--allow-ffi)",
    );
  }
  return out;
}

const BUN_VALUE = new Set([
  "-r",
  "--preload",
  "--env-file",
  "--cwd",
  "-c",
  "--config",
  "--tsconfig-override",
]);

function resolveBun(exe: string, args: string[], ctx: Ctx): Resolved {
  const flags: string[] = [];
  let i = 0;
  const takeFlags = () => {
    for (; i < args.length && args[i].startsWith("-") && args[i] !== "--"; i++) {
      const a = args[i];
      if (a === "--cwd" || a.startsWith("--cwd=")) {
        throw new Refusal("bun --cwd: give paths instead (WorkingDirectory= is not written for it)");
      }
      flags.push(a);
      if (BUN_VALUE.has(a)) {
        const v = args[++i];
        if (v === undefined) throw new Refusal(`bun option ${a} needs a value`);
        flags.push(/^(-r|--preload|--env-file)$/.test(a) && v.includes("/") ? resolvePath(ctx.cwd, v) : v);
      }
    }
    if (args[i] === "--") i++;
  };
  takeFlags();
  let sub = args[i];
  if (sub === "x") return resolveRunner("bun x", args.slice(i + 1), ctx, exe);
  if (sub === "run") {
    i++;
    takeFlags();
    sub = args[i];
  } else if (sub === "start") return resolveScriptEntry("bun start", "start", args.slice(i + 1), ctx);
  if (sub === undefined) throw new Refusal("bun without a file starts nothing to serve: give bun run FILE");
  const rest = args.slice(i + 1);
  const pj = nearestPackage(ctx);
  // bun run NAME: a package.json script first, then a file, then a package bin.
  if (pj?.scripts?.[sub] !== undefined) return resolveScriptEntry(`bun run ${sub}`, sub, rest, ctx);
  const file = resolvePath(ctx.cwd, sub);
  if (ctx.files.stat(file)?.kind === "file") {
    return { argv: [exe, "run", ...flags, file, ...rest], runtime: "bun" };
  }
  if (findBin(sub, ctx)) return resolveRunner(`bun run`, [sub, ...rest], ctx, exe);
  throw new Refusal(`bun run "${sub}": no such file, package.json script or package bin from ${ctx.cwd}`);
}

/**
 * npx, bunx, bun x, npm exec and friends: they run a package's bin as their
 * child. An installed bin is unambiguous, so its entry is written instead.
 */
function resolveRunner(label: string, args: string[], ctx: Ctx, bun?: string): Resolved {
  let i = 0;
  let forceBun = false;
  for (; i < args.length && args[i].startsWith("-"); i++) {
    const a = args[i];
    if (a === "--") {
      i++;
      break;
    }
    if (a === "--bun" && bun !== undefined) forceBun = true;
    else if (!["-y", "--yes", "--no", "-q", "--quiet", "--no-install"].includes(a)) {
      throw new Refusal(`${label} option "${a}" is not understood here: name the program itself after --`);
    }
  }
  const pkg = args[i];
  if (pkg === undefined) throw new Refusal(`${label} without a command: name the program after --`);
  if (!/^(@[^/@]+\/)?[^/@]+$/.test(pkg)) {
    throw new Refusal(
      `${label} ${pkg} fetches a package at every start: install it (npm install ${pkg}) and name its ` +
        "program after --",
    );
  }
  const bin = pkg.includes("/") ? pkg.slice(pkg.indexOf("/") + 1) : pkg;
  const found = findBin(bin, ctx);
  if (found === undefined) {
    throw new Refusal(
      `${label} would look "${pkg}" up or download it at every start, and runs it as its child (LISTEN_PID ` +
        `would name ${
          label.split(" ")[0]
        }): no node_modules/.bin/${bin} from ${ctx.cwd} upward; install it ` +
        `(npm install ${pkg}) and run this again, or name the program after --`,
    );
  }
  const real = ctx.files.realPath(found) ?? found;
  ctx.notes.push(
    `${label} runs "${pkg}" as its child, so LISTEN_PID would name ${label.split(" ")[0]} and the program ` +
      `would fall back to its own port silently: wrote the package's entry ${real} instead`,
  );
  if (forceBun) return resolveCommand([bunBeside(bun!, ctx), "run", real, ...args.slice(i + 1)], ctx);
  return resolveCommand([real, ...args.slice(i + 1)], ctx);
}

/** bun itself, next to a bunx (called bunx, the same binary acts as bunx). */
function bunBeside(exe: string, ctx: Ctx): string {
  if (basename(exe).replace(/\.exe$/, "") === "bun") return exe;
  for (const name of ["bun", "bun.exe"]) {
    const p = join(dirname(exe), name);
    if (ctx.files.stat(p)?.kind === "file") return p;
  }
  return "bun";
}

function findBin(bin: string, ctx: Ctx): string | undefined {
  for (let dir = ctx.cwd;; dir = dirname(dir)) {
    const p = join(dir, "node_modules", ".bin", bin);
    const st = ctx.files.stat(p);
    if (st?.kind === "file") return p;
    if (dir === "/") return undefined;
  }
}

function resolvePackageManager(pm: "npm" | "yarn" | "pnpm", args: string[], ctx: Ctx): Resolved {
  const [sub, ...rest] = args;
  // npm passes a script only the arguments after "--"; yarn and pnpm pass all.
  const extra = (xs: string[]) => {
    if (pm !== "npm") return xs[0] === "--" ? xs.slice(1) : xs;
    const dd = xs.indexOf("--");
    if (dd > 0 || (dd === -1 && xs.length > 0)) {
      throw new Refusal(`npm option "${xs[0]}" is not understood here: name the program itself after --`);
    }
    return dd === -1 ? [] : xs.slice(dd + 1);
  };
  if (sub === "start") return resolveScriptEntry(`${pm} start`, "start", extra(rest), ctx);
  if (sub === "run" || sub === "run-script") {
    if (rest[0] === undefined || rest[0].startsWith("-")) {
      throw new Refusal(`${pm} ${sub} needs a script name`);
    }
    return resolveScriptEntry(`${pm} ${sub} ${rest[0]}`, rest[0], extra(rest.slice(1)), ctx);
  }
  if (sub === "exec" || sub === "x" || sub === "dlx") return resolveRunner(`${pm} ${sub}`, rest, ctx);
  if (pm !== "npm" && sub !== undefined && nearestPackage(ctx)?.scripts?.[sub] !== undefined) {
    return resolveScriptEntry(`${pm} ${sub}`, sub, extra(rest), ctx);
  }
  throw new Refusal(
    `${pm} ${sub ?? ""} does not start a program; ${pm} start and ${pm} run SCRIPT are understood (and ` +
      "replaced by the script's command)",
  );
}

interface PackageJson {
  dir: string;
  scripts?: Record<string, string>;
}

function nearestPackage(ctx: Ctx): PackageJson | undefined {
  for (let dir = ctx.cwd;; dir = dirname(dir)) {
    const text = ctx.files.readText(join(dir, "package.json"));
    if (text !== undefined) {
      try {
        return { dir, ...JSON.parse(text) };
      } catch {
        throw new Refusal(`${join(dir, "package.json")} is not valid JSON`);
      }
    }
    if (dir === "/") return undefined;
  }
}

/**
 * npm start, yarn run NAME, bun run NAME: the script runs through a shell in
 * a child process. A script that is one plain command is written instead,
 * in the package's directory, where the package manager would run it.
 */
function resolveScriptEntry(label: string, name: string, extra: string[], ctx: Ctx): Resolved {
  const pj = nearestPackage(ctx);
  if (pj === undefined) throw new Refusal(`${label}: no package.json in ${ctx.cwd} or above`);
  let script = pj.scripts?.[name];
  if (
    script === undefined && name === "start" && ctx.files.stat(join(pj.dir, "server.js"))?.kind === "file"
  ) {
    script = "node server.js"; // npm's default start
  }
  if (typeof script !== "string") {
    throw new Refusal(`${label}: ${join(pj.dir, "package.json")} has no "${name}" script`);
  }
  return fromScript(label, `the "${name}" script`, script, extra, pj.dir, ctx, pj.scripts?.[`pre${name}`]);
}

function resolveTask(label: string, args: string[], ctx: Ctx): Resolved {
  const [name, ...extra] = args;
  if (name === undefined) throw new Refusal(`${label} needs a task name`);
  for (let dir = ctx.cwd;; dir = dirname(dir)) {
    const text = ctx.files.readText(join(dir, "deno.json"));
    if (text !== undefined) {
      let tasks: Record<string, string | { command?: string }> | undefined;
      try {
        tasks = JSON.parse(text).tasks;
      } catch {
        throw new Refusal(`${join(dir, "deno.json")} is not valid JSON`);
      }
      const t = tasks?.[name];
      const cmd = typeof t === "string" ? t : t?.command;
      if (typeof cmd !== "string") {
        throw new Refusal(`${label}: ${join(dir, "deno.json")} has no "${name}" task`);
      }
      return fromScript(`${label} ${name}`, `the "${name}" task`, cmd, extra, dir, ctx);
    }
    if (dir === "/") throw new Refusal(`${label}: no deno.json in ${ctx.cwd} or above`);
  }
}

function fromScript(
  label: string,
  what: string,
  script: string,
  extra: string[],
  dir: string,
  ctx: Ctx,
  pre?: string,
): Resolved {
  const words = plainWords(script);
  if (words === undefined) {
    throw new Refusal(
      `${label} runs ${what} ("${script}") through a shell as its child, so LISTEN_PID would name the ` +
        "wrapper and the program would fall back to its own port silently; it is not one plain command, so " +
        "name its program after -- (for example: -- node server.js)",
    );
  }
  ctx.notes.push(
    `${label} runs ${what} through a shell as its child (LISTEN_PID would name the wrapper): wrote its ` +
      `command "${script}" instead, in WorkingDirectory=${dir} where ${label.split(" ")[0]} runs it`,
  );
  if (pre !== undefined) {
    ctx.notes.push(`"pre" script "${pre}" is not run by systemd: run it when you deploy`);
  }
  ctx.workingDirectory = dir;
  const binDirs: string[] = [];
  for (let d = dir;; d = dirname(d)) {
    binDirs.push(join(d, "node_modules", ".bin"));
    if (d === "/") break;
  }
  const sub: Ctx = { ...ctx, cwd: dir, path: [...binDirs, ...ctx.path] };
  const r = resolveCommand([...words, ...extra], sub);
  ctx.workingDirectory = sub.workingDirectory;
  return r;
}

/** A command line with no shell syntax but spaces, as words; else undefined. */
function plainWords(line: string): string[] | undefined {
  const t = line.trim();
  if (!/^[A-Za-z0-9_@%+=:,./-]+(\s+[A-Za-z0-9_@%+=:,./-]+)*$/.test(t)) return undefined;
  return t.split(/\s+/);
}

function resolveEnv(id: string, args: string[], ctx: Ctx): Resolved {
  let i = 0;
  for (; i < args.length && /^[A-Za-z_][A-Za-z0-9_]*=/.test(args[i]); i++) ctx.env.push(args[i]);
  if (args[i]?.startsWith("-")) {
    throw new Refusal(`${id} option "${args[i]}": use --setenv NAME=VALUE instead`);
  }
  if (i < args.length && id === "cross-env") {
    ctx.notes.push("cross-env runs the program as its child: wrote its variables as Environment= instead");
  }
  return resolveCommand(args.slice(i), ctx);
}

function resolveShell(sh: string, exe: string, args: string[], ctx: Ctx): Resolved {
  if (args[0] === "-c" && args[1] !== undefined) {
    const script = args[1].trim();
    const execs = /^exec\s/.test(script);
    const words = plainWords(script);
    if (words !== undefined && args.length === 2) {
      ctx.notes.push(`${sh} -c "${script}" is one plain command: wrote it without the shell`);
      return resolveCommand(words, ctx);
    }
    if (execs) {
      ctx.notes.push(
        `${sh} -c "${script}" execs its command, which keeps the PID, but the command inside is not checked: ` +
          "make sure it names its runtime by absolute path and no wrapper",
      );
      return { argv: [exe, ...args] };
    }
    throw new Refusal(
      `${sh} -c "${script}" runs its command as a child, so LISTEN_PID would name the shell and the program ` +
        `would fall back to its own port silently: start it with exec (${sh} -c "exec ...") or name the ` +
        "program after -- directly",
    );
  }
  if (args[0] !== undefined && !args[0].startsWith("-")) {
    const file = existingFile(args[0], `${sh}'s script`, ctx);
    checkShellScript(file, ctx);
    return { argv: [exe, file, ...args.slice(1)] };
  }
  throw new Refusal(`${sh} ${args.join(" ")}: give a script file or -c "exec COMMAND"`);
}

function checkShellScript(file: string, ctx: Ctx): void {
  const text = ctx.files.readText(file) ?? "";
  if (!/^\s*exec\s+\S/m.test(text)) {
    throw new Refusal(
      `the shell script ${file} has no exec line, so it runs its program as a child: LISTEN_PID would name ` +
        "the shell and the program would fall back to its own port silently; end it with exec COMMAND",
    );
  }
  ctx.notes.push(`${file} is a shell script: make sure its exec line names the runtime by absolute path`);
}

/** A script run through its #! line: the interpreter is written, found now. */
function resolveScript(exe: string, real: string, head: Uint8Array, rest: string[], ctx: Ctx): Resolved {
  const line = new TextDecoder().decode(head).split("\n")[0].slice(2).trim();
  const sp = line.search(/\s/);
  const interp = sp === -1 ? line : line.slice(0, sp);
  const arg = sp === -1 ? "" : line.slice(sp).trim();
  let prog = interp;
  let extra = arg === "" ? [] : [arg];
  if (basename(interp) === "env") {
    const words = arg.split(/\s+/).filter((w) => w !== "");
    if (words[0] === "-S") words.shift();
    while (words.length > 0 && /^[A-Za-z_][A-Za-z0-9_]*=/.test(words[0])) ctx.env.push(words.shift()!);
    if (words.length === 0) return { argv: [exe, ...rest] };
    prog = words[0];
    extra = words.slice(1);
  }
  if (SHELLS.has(basename(prog))) {
    checkShellScript(real, ctx);
    return { argv: [exe, ...rest] };
  }
  if (prog !== interp || exe !== real) {
    ctx.notes.push(
      `${exe} is a script for ${prog}: wrote ${basename(prog)} and the script's real path, so that neither ` +
        "/usr/bin/env nor systemd's PATH picks the interpreter",
    );
  }
  try {
    return resolveCommand([prog, ...extra, real, ...rest], ctx);
  } catch (e) {
    if (e instanceof Refusal && !prog.includes("/")) throw new Refusal(`${exe}'s #! line: ${e.message}`);
    throw e;
  }
}

function existingFile(p: string, what: string, ctx: Ctx): string {
  const abs = resolvePath(ctx.cwd, p);
  if (ctx.files.stat(abs)?.kind !== "file") throw new Refusal(`${what} "${p}" does not exist (${abs})`);
  return abs;
}

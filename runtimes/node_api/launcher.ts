// The parts of the launcher that node:child_process, node:fs and
// node:process do the same way in Node, Deno and Bun (each measured: all
// three dup2 an fd listed in spawn's stdio array to its index in the child).
// Builtins are reached inside functions: src/cli/main.ts loads this only for `run`.
import type { ChildExit, Launcher } from "../../src/cli/launcher.ts";

type Fs = typeof import("node:fs");
type Cp = typeof import("node:child_process");

const builtin = <T>(name: string): T =>
  (process as unknown as { getBuiltinModule(n: string): T }).getBuiltinModule(name);
const fs = () => builtin<Fs>("node:fs");

/** What every runtime's launcher shares. */
export type CommonParts = Pick<
  Launcher,
  "spawn" | "kill" | "watch" | "environment" | "unlink" | "lstat" | "isExecutable"
>;

export function commonParts(): CommonParts {
  return {
    spawn(argv, env, fds, stdio) {
      const cp = builtin<Cp>("node:child_process");
      const child = cp.spawn(argv[0], argv.slice(1), {
        // An fd as stdin and stdout: libuv makes fds 0-2 blocking in the
        // child, as an inetd program expects (Node's accepted socket is not).
        stdio: [stdio ?? "inherit", stdio ?? "inherit", "inherit", ...fds],
        env,
      });
      const exited = new Promise<ChildExit>((resolve) => {
        child.once("exit", (code, signal) => resolve({ code, signal }));
        child.once("error", () => resolve({ code: 127, signal: null }));
      });
      return { pid: child.pid ?? -1, exited };
    },
    kill(pid, signal) {
      try {
        process.kill(pid, signal as NodeJS.Signals);
      } catch { /* already gone */ }
    },
    watch: (paths, onChange) => watchTree(fs(), paths, onChange),
    environment: () => ({ ...process.env }) as Record<string, string>,
    unlink(path) {
      try {
        fs().unlinkSync(path);
      } catch { /* gone already */ }
    },
    lstat(path) {
      try {
        const st = fs().lstatSync(path);
        return st.isSocket() ? "socket" : st.isDirectory() ? "dir" : st.isFile() ? "file" : "other";
      } catch {
        return undefined;
      }
    },
    isExecutable(path) {
      // The mode bits, not access(X_OK): Deno's fs.accessSync asks for
      // --allow-sys (it reads the uid), and a COMMAND the launcher may not run
      // still fails at spawn, with status 127.
      try {
        const st = fs().statSync(path);
        return st.isFile() && (st.mode & 0o111) !== 0;
      } catch {
        return false;
      }
    },
  };
}

const ERRNO: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  13: "EACCES",
  20: "ENOTDIR",
  22: "EINVAL",
  24: "EMFILE",
  30: "EROFS",
  36: "ENAMETOOLONG",
  97: "EAFNOSUPPORT",
  98: "EADDRINUSE",
  99: "EADDRNOTAVAIL",
};

/** errno's name for a number (libc) or a negative libuv code. */
export function errnoName(n: number): string {
  return ERRNO[Math.abs(n)] ?? `errno ${Math.abs(n)}`;
}

/** The one-line error for a socket that could not be opened, with what to do. */
export function listenError(text: string, what: string, code: string): Error {
  const hint = code === "EADDRINUSE"
    ? ": another process listens there (ss -ltnp shows which); stop it or pick another address"
    : code === "EACCES" || code === "EPERM"
    ? ": ports below 1024 and some paths need root (or CAP_NET_BIND_SERVICE)"
    : code === "EADDRNOTAVAIL"
    ? ": no interface has that address"
    : code === "EAFNOSUPPORT"
    ? ": this machine has no IPv6: give an IPv4 address (0.0.0.0:PORT)"
    : code === "ENOENT" || code === "ENOTDIR"
    ? ": the directory does not exist"
    : "";
  return new Error(`-l "${text}": cannot listen on ${what}: ${code}${hint}`);
}

/** REMOTE_ADDR as systemd writes it: an IPv4-mapped IPv6 peer as plain IPv4. */
export function remoteAddr(addr: string | undefined): string | undefined {
  if (addr === undefined) return undefined;
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(addr);
  return m ? m[1] : addr;
}

/**
 * --watch under Node and Bun: one non-recursive fs.watch per directory (inotify
 * on the directory, which sees a file renamed over another), new directories
 * added as they appear, and a lone file watched through its directory, where
 * a watch of the file itself ends with the inode a save by rename replaces
 * (in every runtime). Node 22's own recursive watch on Linux
 * (lib/internal/fs/recursive_watch.js) watches each file it found, by inode,
 * and a save by rename (sed -i, an editor's temporary file renamed over the
 * original) replaces that inode: 10 of 12 such saves were seen here. Node 24 rewrote it as a watch per directory (12 of 12); this one
 * serves every Node line alike. Deno has its own (runtimes/ffi/launcher.ts).
 */
export function watchTree(fs: Fs, paths: string[], onChange: (path: string) => void): () => void {
  const watchers = new Map<string, ReturnType<Fs["watch"]>>();
  const isDir = (p: string) => {
    try {
      return fs.lstatSync(p).isDirectory();
    } catch {
      return false;
    }
  };
  const watchDir = (dir: string, only?: string, shown?: string) => {
    const key = only === undefined ? dir : `${dir}\0${only}`;
    if (watchers.has(key)) return;
    let w: ReturnType<Fs["watch"]>;
    try {
      w = fs.watch(dir, { persistent: false }, (_event, name) => {
        const file = name ? String(name) : undefined;
        if (only !== undefined && file !== only) return;
        const full = file === undefined ? dir : `${dir}/${file}`;
        if (only === undefined && file !== undefined && isDir(full)) tree(full);
        if (only === undefined && !isDir(dir)) close(key);
        onChange(shown ?? full);
      });
    } catch {
      return; // gone meanwhile
    }
    w.on("error", () => close(key));
    watchers.set(key, w);
  };
  const close = (key: string) => {
    watchers.get(key)?.close();
    watchers.delete(key);
  };
  const tree = (dir: string) => {
    watchDir(dir);
    let entries: import("node:fs").Dirent[] = [];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch { /* gone meanwhile */ }
    for (const e of entries) if (e.isDirectory()) tree(`${dir}/${e.name}`);
  };
  for (const p of paths) {
    if (isDir(p)) tree(p.replace(/(.)\/+$/, "$1"));
    else {
      const slash = p.lastIndexOf("/");
      watchDir(slash < 0 ? "." : slash === 0 ? "/" : p.slice(0, slash), p.slice(slash + 1), p);
    }
  }
  return () => [...watchers.keys()].forEach(close);
}

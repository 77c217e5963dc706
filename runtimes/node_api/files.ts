// What `socket-activate unit` needs of the file system, through node:fs,
// which Node, Deno (with --allow-read/--allow-write or -A) and Bun all have.
// Loaded only by that command: a static node:fs import would cost Deno about
// 14 ms of start-up on every other path.
import type { Files } from "../../src/_runtime.ts";

/** The file-system view of `socket-activate unit`, in every runtime. */
export async function loadFiles(): Promise<Files> {
  const fs = await import("node:fs");
  const { cwd } = await import("node:process");
  const code = (e: unknown) => (e as { code?: string })?.code;
  const missing = (e: unknown) => code(e) === "ENOENT" || code(e) === "ENOTDIR" || code(e) === "ELOOP";
  return {
    cwd: () => cwd(),
    realPath: (path) => {
      try {
        return fs.realpathSync(path);
      } catch (e) {
        if (missing(e)) return undefined;
        throw e;
      }
    },
    stat: (path) => {
      try {
        const st = fs.statSync(path);
        return {
          kind: st.isFile() ? "file" : st.isDirectory() ? "dir" : "other",
          executable: (Number(st.mode) & 0o111) !== 0,
        };
      } catch (e) {
        if (missing(e) || code(e) === "EACCES") return undefined;
        throw e;
      }
    },
    readHead: (path, bytes) => {
      let fd: number | undefined;
      try {
        fd = fs.openSync(path, "r");
        const buf = new Uint8Array(bytes);
        const n = fs.readSync(fd, buf, 0, bytes, 0);
        return buf.subarray(0, n);
      } catch (e) {
        if (missing(e) || code(e) === "EACCES" || code(e) === "EISDIR") return undefined;
        throw e;
      } finally {
        if (fd !== undefined) fs.closeSync(fd);
      }
    },
    readText: (path) => {
      try {
        return fs.readFileSync(path, "utf8");
      } catch (e) {
        if (missing(e) || code(e) === "EISDIR") return undefined;
        throw e;
      }
    },
    writeText: (path, text, overwrite) => {
      fs.writeFileSync(path, text, { flag: overwrite ? "w" : "wx", mode: 0o644 });
    },
    nodeHasFfi: (exe, flags) => {
      // What runtimes/node/ffi_gate.ts asks, in the Node the unit will run.
      const probe = "const p = process; const ok = typeof p.getBuiltinModule === 'function' && " +
        "!(p.permission && !p.permission.has('ffi')) && !!p.getBuiltinModule('node:ffi'); " +
        "p.stdout.write(String(ok))";
      try {
        const cp = process.getBuiltinModule("node:child_process") as typeof import("node:child_process");
        const r = cp.spawnSync(exe, [...flags, "--no-warnings", "-e", probe], {
          encoding: "utf8",
          timeout: 10_000,
          stdio: ["ignore", "pipe", "ignore"],
        });
        return r.stdout === "true";
      } catch {
        return false; // Deno without --allow-run, say: the safe answer
      }
    },
  };
}

// The Node shim's runtime contract. Bun reuses most of it (its node:fs and
// process work the same) and adds FFI.
import type * as NodeFs from "node:fs";
import type { FdState, Runtime } from "../src/_runtime.ts";

// Through getBuiltinModule rather than a static import: mod.ts imports this
// file in every runtime, and a static node:fs import costs Deno about 14 ms of
// start-up even when the Deno shim is the one in use.
let fsModule: typeof NodeFs | undefined;
const fsm = () => (fsModule ??= process.getBuiltinModule("node:fs") as typeof NodeFs);

function errCode(e: unknown): string | undefined {
  return (e as { code?: string })?.code;
}

export function readLink(path: string): string | undefined {
  try {
    return fsm().readlinkSync(path);
  } catch (e) {
    if (errCode(e) === "ENOENT" || errCode(e) === "ENOTDIR") return undefined;
    throw e;
  }
}

export function readText(path: string): string | undefined {
  try {
    return fsm().readFileSync(path, "latin1");
  } catch (e) {
    if (errCode(e) === "ENOENT" || errCode(e) === "ENOTDIR") return undefined;
    throw e;
  }
}

export function statKind(path: string): "fifo" | "file" | "other" | undefined {
  try {
    const st = fsm().statSync(path);
    return st.isFIFO() ? "fifo" : st.isFile() || st.isCharacterDevice() || st.isBlockDevice() ? "file" : "other";
  } catch {
    return undefined;
  }
}

/** F_GETFD through /proc/self/fdinfo: Node has no fcntl. */
export function fdStateFromProc(fd: number): FdState {
  const text = readText(`/proc/self/fdinfo/${fd}`);
  if (text === undefined) return "closed";
  const m = /^flags:\s*([0-7]+)/m.exec(text);
  if (!m) return "unknown";
  return (parseInt(m[1], 8) & 0o2000000) !== 0 ? "cloexec" : "inheritable";
}

export function writeAll(fd: number, text: string): void {
  const bytes = new TextEncoder().encode(text);
  let off = 0;
  while (off < bytes.length) {
    try {
      off += fsm().writeSync(fd, bytes, off);
    } catch (e) {
      if (errCode(e) !== "EAGAIN") throw e;
    }
  }
}

/** The contract as Node fulfils it. */
export const nodeRuntime: Runtime = {
  name: "node",
  pid: () => process.pid,
  ppid: () => process.ppid,
  getEnv: (k) => process.env[k],
  deleteEnv: (k) => {
    delete process.env[k];
  },
  readLink,
  readText,
  statKind,
  // Node marks every inherited fd FD_CLOEXEC at start-up and has no fcntl to
  // do it later: this only reads the flag (and so tells a closed fd).
  setCloexec: fdStateFromProc,
  fdState: fdStateFromProc,
  sockInfo: () => undefined,
  // pidfd_open needs a syscall Node cannot make without a native addon; like
  // libsystemd where pidfds are unavailable, the LISTEN_PIDFDID check is skipped.
  pidfdId: () => undefined,
  args: () => process.argv.slice(2),
  write: (stream, text) => writeAll(stream === "stdout" ? 1 : 2, text),
  exit: (code) => process.exit(code),
  version: () => `node ${process.versions.node}`,
  onSignal: (signal, fn) => {
    process.on(signal, fn);
    return () => process.off(signal, fn);
  },
  net: () => import("./_net_node.ts").then((m) => m.nodeNet),
};

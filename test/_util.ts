// Shared by the test files, which run unchanged under node --test, deno test
// and bun test: which runtime this is, how to start the CLI in it, and
// bounded ways to start and stop real processes.
import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { nodeFfi } from "../runtimes/node/ffi_gate.ts";

export const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");

const g = globalThis as { Deno?: { execPath(): string }; Bun?: unknown };
/** The runtime running this test file. */
export const RUNTIME: "node" | "deno" | "bun" = g.Deno ? "deno" : g.Bun ? "bun" : "node";

/**
 * Whether this is a Node that sends sd_notify itself over node:ffi (26.9 and
 * later), rather than through systemd-notify (22, 24, SOCKET_ACTIVATE_FFI=0).
 */
export const NODE_FFI: boolean = RUNTIME === "node" && nodeFfi() !== undefined;

/** Runs `fn` with environment variables set (undefined: unset), restoring them after. */
export async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const set = (v: Record<string, string | undefined>) => {
    for (const [k, x] of Object.entries(v)) x === undefined ? delete process.env[k] : (process.env[k] = x);
  };
  set(vars);
  try {
    return await fn();
  } finally {
    set(saved);
  }
}

/** The command that starts the socket-activate CLI in this runtime. */
export function cliCommand(): string[] {
  if (RUNTIME === "deno") return [g.Deno!.execPath(), "run", "-A", path.join(ROOT, "mod.ts")];
  if (RUNTIME === "bun") return [process.execPath, "run", path.join(ROOT, "mod.ts")];
  return [process.execPath, path.join(ROOT, "dist", "cli.cjs")];
}

/**
 * Whether this runtime's node:net binds an abstract unix name as given: not
 * in Node before libuv 1.48 (Node 20 pads it, nodejs/node#50889).
 */
export const ABSTRACT_BINDS: boolean = RUNTIME !== "node" ||
  /^(?:[2-9]|1\.(?:4[89]|[5-9]\d))/.test(process.versions.uv ?? "");
/** Why an abstract-name test is skipped here. */
export const NO_ABSTRACT = `Node ${process.versions.node} (libuv ${process.versions.uv}) pads abstract names`;

/** The command that runs a TypeScript fixture in this runtime, keeping the PID. */
export function fixtureCommand(file: string): string[] {
  const f = path.join(ROOT, "test", "fixtures", file);
  if (RUNTIME === "deno") return [g.Deno!.execPath(), "run", "-A", f];
  if (RUNTIME === "bun") return [process.execPath, "run", f];
  // node --import tsx loads the TypeScript in-process; the tsx CLI would spawn
  // a child and break LISTEN_PID.
  return [process.execPath, "--import", "tsx", f];
}

export const SSA = "/usr/bin/systemd-socket-activate";

/** A port the kernel just handed out on `host`, so no two servers share one. */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen({ port: 0, host, exclusive: true }, () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "sa-test-"));
}

export interface Run {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /**
   * Sends a signal by PID. Deno's child.kill() makes the exit read as killed
   * by that signal even when the child caught it and exited 0.
   */
  signal(sig: NodeJS.Signals): void;
  /** Resolves with the exit status (or signal name); rejects after `ms`. */
  exited(ms?: number): Promise<number | string>;
  /**
   * Resolves once stderr matches `re`; rejects after `ms` with what stderr
   * holds. A line the child wrote before a response can still be in the pipe
   * when the response arrives: assert on stderr through this, not directly.
   */
  stderrMatch(re: RegExp, ms?: number): Promise<void>;
}

// Every process a test starts dies with the test process, even when an
// assertion fails before the test's own kill: no server outlives its test.
const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const c of live) {
    try {
      process.kill(c.pid!, "SIGKILL");
    } catch { /* gone */ }
  }
});

/** Starts a process (in `cwd`, default this one's); its output is collected, and `exited` bounds the wait. */
export function start(cmd: string[], env: Record<string, string | undefined> = {}, cwd?: string): Run {
  const child = spawn(cmd[0], cmd.slice(1), {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env } as Record<string, string>,
    stdio: ["ignore", "pipe", "pipe"],
    cwd,
  });
  let out = "", err = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (err += d));
  live.add(child);
  const done = new Promise<number | string>((resolve) => {
    child.on("close", (code, signal) => {
      live.delete(child);
      resolve(code ?? signal ?? -1);
    });
  });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    signal: (sig) => process.kill(child.pid!, sig),
    stderrMatch: (re, ms = 10000) =>
      until(() => re.test(err), ms, () => `stderr of ${cmd.join(" ")} to match ${re}; it holds:\n${err}`),
    exited(ms = 15000) {
      let timer: ReturnType<typeof setTimeout>;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          child.kill("SIGKILL");
          reject(new Error(`${cmd.join(" ")} did not exit within ${ms} ms\nstdout: ${out}\nstderr: ${err}`));
        }, ms);
      });
      return Promise.race([done, timeout]).finally(() => clearTimeout(timer));
    },
  };
}

/**
 * A self-signed certificate for localhost and 127.0.0.1 made with openssl
 * (an EC key, valid a day) in a fresh directory: PEM file paths.
 */
export async function selfSigned(): Promise<{ cert: string; key: string; dir: string }> {
  const dir = tempDir();
  const cert = path.join(dir, "cert.pem"), key = path.join(dir, "key.pem");
  const r = start([
    "openssl",
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=localhost",
    "-addext",
    "subjectAltName=DNS:localhost,IP:127.0.0.1",
    "-keyout",
    key,
    "-out",
    cert,
  ]);
  if ((await r.exited()) !== 0) throw new Error(`openssl could not make a certificate: ${r.stderr()}`);
  return { cert, key, dir };
}

/** An example's own command line for this runtime (see the example's header). */
export function exampleCommand(file: string): string[] {
  const f = path.join(ROOT, "examples", file);
  if (RUNTIME === "deno") return [g.Deno!.execPath(), "run", "--allow-env", "--allow-net", "--allow-ffi", f];
  if (RUNTIME === "bun") return [process.execPath, "run", f];
  // Node 22.18+, 24 and 26 strip the types themselves (the sources keep to
  // erasable syntax: tsconfig's erasableSyntaxOnly), as a user would run them.
  if (NODE_RUNS_TS) return [process.execPath, f];
  return [process.execPath, "--import", "tsx", f];
}

/** Whether this Node runs a .ts file as it is (type stripping, Node 22.18+). */
export const NODE_RUNS_TS: boolean = RUNTIME === "node" &&
  (process.features as { typescript?: string | false }).typescript !== undefined &&
  (process.features as { typescript?: string | false }).typescript !== false;

/** Polls `cond` every 10 ms until it holds; throws after `ms`, naming `what` (read then). */
export async function until(
  cond: () => boolean,
  ms = 10000,
  what: string | (() => string) = "a condition",
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${typeof what === "string" ? what : what()}`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Connects to a TCP port or unix path, retrying until it answers (bounded). */
export async function connect(
  target: { port: number; host?: string } | { path: string },
  ms = 10000,
): Promise<net.Socket> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await new Promise<net.Socket>((resolve, reject) => {
        const s = "path" in target
          ? net.connect(target.path)
          : net.connect(target.port, target.host ?? "127.0.0.1");
        s.once("connect", () => resolve(s));
        s.once("error", reject);
      });
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

/** Sends `data` in `chunk`-byte writes, half-closes, and collects every byte until the server closes. */
export function exchange(s: net.Socket, data: Uint8Array, chunk = 65536, ms = 30000): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const parts: Uint8Array[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no close within ${ms} ms (got ${parts.reduce((n, p) => n + p.length, 0)} bytes)`));
    }, ms);
    s.on("data", (d) => parts.push(new Uint8Array(d)));
    s.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on("close", () => {
      clearTimeout(timer);
      const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let off = 0;
      for (const p of parts) {
        out.set(p, off);
        off += p.length;
      }
      resolve(out);
    });
    (async () => {
      for (let off = 0; off < data.length; off += chunk) {
        if (!s.write(data.subarray(off, off + chunk))) await new Promise((r) => s.once("drain", r));
      }
      s.end();
    })();
  });
}

/** What the echo server must answer to `data`. */
export function expectedEcho(data: Uint8Array, activated: boolean): Uint8Array {
  const greeting = new TextEncoder().encode(`OHAI! systemd socket: ${activated}\n`);
  const out = new Uint8Array(greeting.length + data.length);
  out.set(greeting);
  for (let i = 0; i < data.length; i++) {
    const c = data[i];
    out[greeting.length + i] = c >= 97 && c <= 122 ? c - 32 : c;
  }
  return out;
}

/** True when nothing accepts connections on 127.0.0.1:port. */
export function refused(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, host);
    s.once("connect", () => {
      s.destroy();
      resolve(false);
    });
    s.once("error", () => resolve(true));
  });
}

/**
 * Runs `cmd` under systemd-socket-activate with `args` (-l ..., --fdname ...),
 * makes the first connection that starts it, and returns the run.
 */
export async function activate(
  args: string[],
  cmd: string[],
  first: { port: number; host?: string } | { path: string },
  env: Record<string, string> = {},
): Promise<{ run: Run; conn: net.Socket }> {
  const run = start([SSA, ...args, ...cmd], env);
  const conn = await connect(first);
  return { run, conn };
}

/**
 * Sends `payload` to the abstract unix socket `name` (no leading @), half-closes
 * and prints everything received. Python, because Node 20's net.connect pads
 * abstract names to 108 bytes (nodejs/node#50889) and so cannot reach them.
 */
export function abstractClient(name: string, payload: string): Run {
  return start([
    "/usr/bin/python3",
    "-c",
    `
import socket, sys, time
for _ in range(200):
    try:
        s = socket.socket(socket.AF_UNIX); s.connect(b"\\0" + sys.argv[1].encode()); break
    except OSError:
        time.sleep(0.05)
s.sendall(sys.argv[2].encode()); s.shutdown(socket.SHUT_WR)
out = b""
while True:
    d = s.recv(65536)
    if not d: break
    out += d
sys.stdout.write(out.decode())`,
    name,
    payload,
  ]);
}

// The launcher under Node. Node has no socket that listens without libuv
// accepting on it: a listen() arms the handle's watcher and the next turn of
// the loop accepts. So the sockets are bound and listened on in a worker
// thread that then blocks in Atomics.wait and never turns its loop again;
// its fds belong to the whole process, and the main thread passes them to
// each child. Tested: a connection made while no child runs waits in the
// backlog and is served by the next child.
import type { HeldSocket, Launcher, ListenSpec } from "../../src/cli/launcher.ts";
import { commonParts, errnoName, listenError, remoteAddr } from "../node_api/launcher.ts";
import { describeSpec } from "../../src/cli/launcher.ts";
import { abstractBindWorks } from "../node_api/abstract.ts";
import { nodeFfi } from "./ffi_gate.ts";

type Fs = typeof import("node:fs");
type Net = typeof import("node:net");
type Wt = typeof import("node:worker_threads");
const builtin = <T>(name: string): T =>
  (process as unknown as { getBuiltinModule(n: string): T }).getBuiltinModule(name);

// CommonJS, evaluated in the worker. process.binding() is deprecated in the
// documentation only (DEP0111); tcp_wrap, pipe_wrap and udp_wrap are what
// node:net and node:dgram are built on, and their bind/listen calls return a
// negative errno instead of throwing.
const HOLDER = `
const { workerData, parentPort } = require("node:worker_threads");
const { TCP, constants: TC } = process.binding("tcp_wrap");
const { Pipe, constants: PC } = process.binding("pipe_wrap");
const { UDP } = process.binding("udp_wrap");
const handles = [];
const fds = [];
for (let i = 0; i < workerData.specs.length; i++) {
  const s = workerData.specs[i];
  let h, r;
  if (s.kind === "unix") {
    h = new Pipe(PC.SERVER);
    r = h.bind(s.path);
    if (r === 0) r = h.listen(4096);
  } else if (s.datagram) {
    h = new UDP();
    r = s.family === "ipv4" ? h.bind(s.host, s.port, 0) : h.bind6(s.host, s.port, 0);
  } else {
    h = new TCP(TC.SERVER);
    r = s.family === "ipv4" ? h.bind(s.host, s.port) : h.bind6(s.host, s.port, 0);
    if (r === 0) r = h.listen(4096);
  }
  if (r !== 0) {
    parentPort.postMessage({ index: i, errno: r });
    process.exit(0);
  }
  handles.push(h);
  fds.push(h.fd);
}
parentPort.postMessage({ fds });
// Never back to the loop: the listen()s above stay unpolled for good.
Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
`;

const abstractRefusal = () =>
  `Node ${process.versions.node} (libuv ${process.versions.uv}) binds abstract names padded to 108 bytes ` +
  "(nodejs/node#50889, fixed in libuv 1.48), which no client reaches: use a /path, Node 22 or later, " +
  "or run the launcher under Deno or Bun";

const unixDgram = (s: ListenSpec) => s.kind === "unix" && s.datagram;

/**
 * Opens unix datagram sockets over node:ffi (Node 26): libuv has no handle
 * for one (nodejs/node#61933). Nothing polls an fd opened so, and the
 * datagrams wait in its queue for COMMAND. Undefined without node:ffi.
 */
async function unixDgramOpener(): Promise<((s: ListenSpec) => number) | undefined> {
  const ffi = nodeFfi();
  if (ffi === undefined) return undefined;
  const { nodeLibc, nodeKeys } = await import("./ffi_libc.ts");
  if (nodeLibc(ffi) === null) return undefined;
  const { nodeSocketOpener } = await import("../ffi/launcher.ts");
  return nodeSocketOpener(ffi, nodeKeys()!);
}

async function hold(specs: ListenSpec[]): Promise<{ fd: number; spec: ListenSpec }[]> {
  const opener = specs.some(unixDgram) ? await unixDgramOpener() : undefined;
  for (const s of specs) {
    if (unixDgram(s) && opener === undefined) {
      throw new Error(
        `-l "${s.text}": Node ${process.versions.node} has no unix datagram socket (nodejs/node#61933): ` +
          "Node 26.9 and later open one over node:ffi (unless SOCKET_ACTIVATE_FFI=0, --no-experimental-ffi " +
          "or --permission without --allow-ffi turns that off), or run the launcher under " +
          "Deno (deno run -A mod.ts run ...) or Bun (bun run mod.ts run ...)",
      );
    }
    if (s.kind === "unix" && s.path.startsWith("\0") && !abstractBindWorks()) {
      throw new Error(`-l "${s.text}": ${abstractRefusal()}`);
    }
  }
  const own: number[] = [];
  try {
    for (const s of specs) if (unixDgram(s)) own.push(opener!(s));
    const rest = specs.filter((s) => !unixDgram(s));
    const fds = rest.length === 0 ? [] : await holdInWorker(rest);
    return specs.map((spec) => ({ fd: unixDgram(spec) ? own.shift()! : fds.shift()!, spec }));
  } catch (e) {
    for (const fd of own) builtin<Fs>("node:fs").closeSync(fd);
    throw e;
  }
}

function holdInWorker(specs: ListenSpec[]): Promise<number[]> {
  const { Worker } = builtin<Wt>("node:worker_threads");
  const worker = new Worker(HOLDER, { eval: true, workerData: { specs } });
  worker.unref();
  return new Promise((resolve, reject) => {
    worker.once("error", reject);
    worker.once("message", (m: { fds?: number[]; index?: number; errno?: number }) => {
      if (m.fds) return resolve(m.fds);
      const s = specs[m.index!];
      reject(listenError(s.text, describeSpec(s), errnoName(m.errno!)));
    });
  });
}

// Start on demand. Node has no poll(2), and a stream handle that reads a
// listening socket gives up for good at the first error. A UDP handle opened
// on the listening fd does not: libuv polls it for POLLIN, and recvmsg(2) on
// a listening socket fails (ENOTCONN for TCP, EINVAL for unix) without taking
// the connection, which stays in the backlog for COMMAND. Re-armed by
// recvStart(), tested on Node 22, 24 and 26. libuv's uv_udp_open sets
// SO_REUSEADDR, which a TCP listener has already and a unix one ignores.
interface UdpHandle {
  open(fd: number): number;
  recvStart(): number;
  recvStop(): number;
  onmessage: (() => void) | undefined;
}
const watchers = new Map<number, UdpHandle>();

function waitForTraffic(held: HeldSocket[]): { ready: Promise<void>; cancel(): void } | string {
  if (held.some((h) => h.spec.datagram)) {
    const ffi = nodeFfi();
    if (ffi === undefined) {
      return `Node ${process.versions.node} cannot wait for a datagram without reading it (node:dgram has no ` +
        "MSG_PEEK; Node 26.9 and later wait with poll(2) over node:ffi)";
    }
    return pollForTraffic(ffi, held.map((h) => h.fd));
  }
  const { UDP } = (process as unknown as { binding(n: string): { UDP: new () => UdpHandle } }).binding(
    "udp_wrap",
  );
  let done!: () => void;
  const ready = new Promise<void>((r) => (done = r));
  const handles = held.map((h) => {
    let w = watchers.get(h.fd);
    if (!w) {
      w = new UDP();
      const r = w.open(h.fd);
      if (r !== 0) throw new Error(`cannot watch fd ${h.fd} for a connection: ${errnoName(r)}`);
      watchers.set(h.fd, w);
    }
    return w;
  });
  const cancel = () => {
    for (const w of handles) {
      w.recvStop();
      w.onmessage = undefined;
    }
  };
  for (const w of handles) {
    w.onmessage = () => {
      cancel();
      done();
    };
    w.recvStart();
  }
  return { ready, cancel };
}

/**
 * Node 26: poll(2) over node:ffi leaves the datagram (or connection) where it
 * is. node:ffi's calls are synchronous, so a zero timeout on a timer, as
 * listenDatagram() polls on Node and Bun (runtimes/ffi/dgram.ts): at most
 * 20 ms late while idle. Where libc cannot be bound, COMMAND starts at once.
 */
function pollForTraffic(ffi: NonNullable<ReturnType<typeof nodeFfi>>, fds: number[]) {
  let waiting = true;
  const ready = (async () => {
    const [{ nodeLibc }, { timerWait }] = await Promise.all([
      import("./ffi_libc.ts"),
      import("../ffi/dgram.ts"),
    ]);
    const libc = nodeLibc(ffi);
    if (libc === null) return;
    const pfd = new Uint8Array(8 * fds.length);
    const v = new DataView(pfd.buffer);
    fds.forEach((fd, i) => {
      v.setInt32(8 * i, fd, true);
      v.setInt16(8 * i + 4, 1, /* POLLIN */ true);
    });
    const wait = timerWait((p) => libc.poll(p, fds.length, 0));
    while (waiting) if (await wait(pfd) > 0) return;
    await new Promise(() => {}); // cancelled: never
  })();
  return { ready, cancel: () => void (waiting = false) };
}

/** The launcher as Node runs it. */
export const nodeLauncher: Launcher = {
  ...commonParts(),
  hold,
  waitForTraffic,
  sealInheritedFds() {
    const fs = builtin<Fs>("node:fs");
    // Node marks some inherited fds close-on-exec at start-up, not all (an fd
    // 30 or 251 from the parent reaches Node's children), and cannot set the
    // flag itself: close the rest, as systemd-socket-activate does.
    const ipc = Number(process.env.NODE_CHANNEL_FD ?? -1);
    for (const name of fs.readdirSync("/proc/self/fd")) {
      const fd = Number(name);
      if (!(fd > 2) || fd === ipc) continue;
      let info: string;
      try {
        info = fs.readFileSync(`/proc/self/fdinfo/${fd}`, "latin1");
      } catch {
        continue; // readdir's own fd, closed by now
      }
      const flags = /^flags:\s*([0-7]+)/m.exec(info);
      if (flags && (parseInt(flags[1], 8) & 0o2000000) === 0) {
        try {
          fs.closeSync(fd);
        } catch { /* closed meanwhile */ }
      }
    }
  },
  serve(specs, onConnection) {
    const net = builtin<Net>("node:net");
    const servers = specs.map((s) =>
      // pauseOnConnect: the launcher must read nothing the child is to read.
      net.createServer({ pauseOnConnect: true }, (sock) => {
        const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
        if (fd === undefined || fd < 0) return void sock.destroy();
        onConnection({
          fd,
          remoteAddr: s.kind === "ip" ? remoteAddr(sock.remoteAddress) : undefined,
          remotePort: s.kind === "ip" ? sock.remotePort : undefined,
          // Closes this process's fd only (no shutdown): the child's copy
          // keeps the connection.
          close: () => sock.destroy(),
        });
      })
    );
    return Promise.all(servers.map((srv, i) =>
      new Promise<void>((resolve, reject) => {
        const s = specs[i];
        srv.once("error", (e: NodeJS.ErrnoException) =>
          reject(listenError(s.text, describeSpec(s), e.code ?? "")));
        if (s.kind === "unix") {
          if (s.path.startsWith("\0") && !abstractBindWorks()) {
            return reject(new Error(`-l "${s.text}": ${abstractRefusal()}`));
          }
          srv.listen({ path: s.path, backlog: 4096 }, resolve);
        } else srv.listen({ host: s.host, port: s.port, ipv6Only: false, backlog: 4096 }, resolve);
      })
    )).then(() => () => servers.forEach((srv) => srv.close()));
  },
  onSignal(signal, fn) {
    process.on(signal, fn);
    return () => process.off(signal, fn);
  },
};

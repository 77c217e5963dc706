// UDP through node:dgram: Node's way in, and Bun's (bind({ fd }) works in
// both). Loaded on the first listenDatagram().
import type * as Dgram from "node:dgram";
import { ActivationError } from "../../src/errors.ts";
import type { Addr, DgramAdapter, RawDgram } from "../../src/_net.ts";

const dgramm = () => process.getBuiltinModule("node:dgram") as typeof Dgram;

function wrap(s: Dgram.Socket, onMessage: (data: Uint8Array, from: Addr) => void): RawDgram {
  s.on("message", (msg, rinfo) => {
    onMessage(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength), {
      transport: "udp",
      hostname: rinfo.address,
      port: rinfo.port,
    });
  });
  // Errors (an unreachable peer, say) must not crash the process.
  s.on("error", () => {});
  let addr: Addr | undefined;
  try {
    const a = s.address();
    addr = { transport: "udp", hostname: a.address, port: a.port };
  } catch { /* not reported for an fd */ }
  return {
    addr,
    send: (data, to) =>
      new Promise((resolve, reject) => {
        if (to.transport === "unix") {
          return reject(new TypeError("Cannot send a UDP datagram to a unix address"));
        }
        s.send(data, to.port, to.hostname, (e) => (e ? reject(e) : resolve()));
      }),
    close: () => s.close(),
  };
}

function bound(s: Dgram.Socket, bind: (cb: () => void) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    s.once("error", reject);
    bind(() => {
      s.off("error", reject);
      resolve();
    });
  });
}

/** The node:dgram adapter. */
export const nodeDgram: DgramAdapter = {
  async bindFd(fd, family, onMessage) {
    if (family === "unix") {
      // node:dgram is UDP only (nodejs/node#61933 closed as stale), and Node
      // 22 and 24 have no FFI to call recvfrom with.
      throw new ActivationError(
        "ENOTSUP",
        `Node ${process.versions.node} cannot receive on a unix datagram socket (its dgram is UDP only): ` +
          "serve it with Node 26.9 or later (node:ffi, unless SOCKET_ACTIVATE_FFI=0, --no-experimental-ffi, or " +
          "--permission without --allow-ffi turns it off), Deno (--allow-ffi) or Bun, or use a UDP port in " +
          "ListenDatagram=",
      );
    }
    const s = dgramm().createSocket(family === "ipv6" ? "udp6" : "udp4");
    await bound(s, (cb) => s.bind({ fd } as Dgram.BindOptions, cb));
    return wrap(s, onMessage);
  },
  async bindAddr(target, onMessage) {
    const s = dgramm().createSocket(target.hostname.includes(":") ? "udp6" : "udp4");
    await bound(s, (cb) => s.bind(target.port, target.hostname, cb));
    return wrap(s, onMessage);
  },
};

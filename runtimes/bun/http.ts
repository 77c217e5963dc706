// HTTP on an inherited fd in Bun. Bun's http.Server ignores listen({ fd }):
// it binds a random port on :: and reports listening, while the inherited
// socket is never accepted (oven-sh/bun#22559). Its node:net and node:tls
// servers do take the fd, so one of them accepts and hands each socket to
// the http.Server with emit("connection"). TLS is terminated by node:tls in
// front of a plain http.Server: Bun's https.Server fed a raw socket through
// emit("connection") parses the TLS ClientHello as HTTP and answers in plain
// text, without TLS (oven-sh/bun#42594, a fix still open; #42239 closed).
import type * as Net from "node:net";
import type * as Tls from "node:tls";
import type { HttpAdapter, TlsOptions } from "../../src/_http.ts";
import { addrOf, fetchServer, httpsm, listening, netTarget, pem } from "../node_api/fetch.ts";

let netModule: typeof Net | undefined;
let tlsModule: typeof Tls | undefined;
const netm = () => (netModule ??= process.getBuiltinModule("node:net") as typeof Net);
const tlsm = () => (tlsModule ??= process.getBuiltinModule("node:tls") as typeof Tls);

/** The Bun adapter. */
export const bunHttp: HttpAdapter = {
  fetchServer,
  needsTlsOutside: true,
  tlsOf(server) {
    if (!(server instanceof httpsm().Server)) return "none";
    // Bun keeps an https.Server's options under a symbol described "tls"
    // (no public accessor); read only cert and key, and only when both are there.
    const sym = Object.getOwnPropertySymbols(server).find((s) => s.description === "tls");
    const o = sym === undefined ? undefined : (server as unknown as Record<symbol, unknown>)[sym];
    const { cert, key } = (o ?? {}) as Partial<TlsOptions>;
    return cert !== undefined && key !== undefined ? { cert, key } : undefined;
  },
  async listenFd(server, fd, _handle, tls) {
    const hand = (s: Net.Socket) => server.emit("connection", s);
    const relay = tls
      ? tlsm().createServer({ ...pem(tls), ALPNProtocols: ["http/1.1"] }, hand)
      : netm().createServer(hand);
    // A connection the relay takes but the http.Server never reads (a TLS
    // handshake failing, say) must not be an uncaught error.
    relay.on("tlsClientError", () => {});
    await listening(relay, { fd });
    // The server's owner stops it with server.close() (Express, Fastify and
    // Koa apps do) and asks server.address(): both must mean the relay, since
    // the server itself never listens.
    const own = { close: server.close, address: server.address };
    server.close = function (this: unknown, cb?: (err?: Error) => void) {
      relay.close();
      server.close = own.close;
      server.address = own.address;
      own.close.call(server, () => cb?.());
      return server;
    } as typeof server.close;
    server.address = () => relay.address();
    const handleFd = (relay as unknown as { _handle?: { fd?: number } })._handle?.fd;
    return {
      addr: addrOf(relay),
      sameFd: typeof handleFd !== "number" || handleFd < 0 ? undefined : handleFd === fd,
      close: () => void server.close(),
    };
  },
  async listenAddr(server, target) {
    // On an address of its own Bun's http.Server (and https.Server) listens
    // where it is told.
    await listening(server, netTarget(target));
    return { addr: addrOf(server), sameFd: undefined, close: () => void server.close() };
  },
};

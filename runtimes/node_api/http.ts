// HTTP on an inherited fd in Node and Deno: node:http's own listen({ fd }),
// which both honour (Deno's node:http is built on its node:net). Not
// emit('connection') of sockets accepted elsewhere: Deno's http.Server fed
// that way drops keep-alive connections after the first response.
import type * as Http from "node:http";
import type { HttpAdapter } from "../../src/_http.ts";
import { addrOf, fetchServer, listening, netTarget } from "./fetch.ts";

/** The node:http adapter (Node and Deno). */
export const nodeHttp: HttpAdapter = {
  fetchServer,
  needsTlsOutside: false,
  async listenFd(server, fd, handle) {
    // A raw handle from openTcp (Node) gets listen() first, in the same tick
    // as node:net takes it over: a UDP socket fails here, as in listen().
    const raw = handle as { listen?: (backlog: number) => number } | undefined;
    if (typeof raw?.listen === "function") {
      const err = raw.listen(511);
      if (err !== 0) {
        throw Object.assign(new Error(`listen failed (uv error ${err})`), { code: "EPROTOTYPE" });
      }
    }
    await listening(server, handle ?? { fd });
    // Node's handle tells the fd it wraps; Deno's does not (the address then settles it).
    const handleFd = (server as unknown as { _handle?: { fd?: number } })._handle?.fd;
    return {
      addr: addrOf(server),
      sameFd: typeof handleFd !== "number" || handleFd < 0 ? undefined : handleFd === fd,
      close: () => closeListener(server),
    };
  },
  async listenAddr(server, target) {
    await listening(server, netTarget(target));
    return { addr: addrOf(server), sameFd: undefined, close: () => closeListener(server) };
  },
};

/** Stops accepting; connections stay until the drain ends them. */
function closeListener(server: Http.Server): void {
  server.close();
}

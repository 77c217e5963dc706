// One small-response HTTP server per benchmark variant, for bench/http.mjs:
//   <runtime> bench/http/server.mjs <variant> [port]
// Every variant answers GET with "Hello, World!" (text/plain), keep-alive.
// The "-fd" variants serve the activated fd 3 (run under
// systemd-socket-activate); the "-port" ones listen on 127.0.0.1:<port>.
// They are the alternatives measured for issue 4; only "pkg-serve" and the
// fast modules are the package's code.
import process from "node:process";

const [variant, portArg] = process.argv.slice(2);
const port = Number(portArg);
const BODY = "Hello, World!";
const HOST = "127.0.0.1";
const TYPE = { "content-type": "text/plain;charset=UTF-8" };
const fetchHandler = () => new Response(BODY, { headers: TYPE });
const nodeHandler = (_req, res) => {
  res.setHeader("content-type", TYPE["content-type"]);
  res.end(BODY); // headers not sent yet: node:http sets content-length
};

// A hand-written node:http -> fetch bridge (what serve() must do over
// node:http): a Request per request, the Response's headers and body written
// back. Stands in for the package's serve() until that lands.
async function bridged(req, res) {
  const init = { method: req.method, headers: req.headers };
  if (req.method !== "GET" && req.method !== "HEAD") {
    const { Readable } = await import("node:stream");
    init.body = Readable.toWeb(req);
    init.duplex = "half";
  }
  const r = await fetchHandler(new Request(`http://${req.headers.host ?? HOST}${req.url}`, init));
  res.writeHead(r.status, Object.fromEntries(r.headers));
  if (r.body === null) return void res.end();
  for await (const chunk of r.body) if (!res.write(chunk)) await new Promise((ok) => res.once("drain", ok));
  res.end();
}
const bridge = (req, res) => void bridged(req, res).catch(() => res.destroy());

const rt = typeof globalThis.Deno !== "undefined"
  ? "deno"
  : typeof globalThis.Bun !== "undefined"
  ? "bun"
  : "node";

async function nodeHttp(handler, where) {
  const http = await import("node:http");
  http.createServer({ keepAliveTimeout: 60_000 }, handler).listen(where);
}

// Bun's http.Server ignores listen({ fd }) (oven-sh/bun#22559): node:net
// accepts and hands each socket over.
async function netEmit(handler) {
  const http = await import("node:http");
  const net = await import("node:net");
  const server = http.createServer({ keepAliveTimeout: 60_000 }, handler);
  net.createServer((s) => server.emit("connection", s)).listen({ fd: 3 });
}

const variants = {
  "node-http-port": () => nodeHttp(nodeHandler, { port, host: HOST }),
  "node-http-fd": () => nodeHttp(nodeHandler, { fd: 3 }),
  "node-bridge-fd": () => nodeHttp(bridge, { fd: 3 }),

  "deno-serve-port": () => globalThis.Deno.serve({ port, hostname: HOST, onListen() {} }, fetchHandler),
  "deno-http-fd": () => nodeHttp(nodeHandler, { fd: 3 }),
  "deno-bridge-fd": () => nodeHttp(bridge, { fd: 3 }),
  "deno-fast-fd": () => fast("deno"),
  // The deprecated Deno.serveHttp (still present in 2.9) on the same taken streams.
  "deno-servehttp-fd": async () => {
    const net = await import("node:net");
    net.createServer({ pauseOnConnect: true }, (sock) => {
      const localAddr = { transport: "tcp", hostname: sock.localAddress, port: sock.localPort };
      const remoteAddr = { transport: "tcp", hostname: sock.remoteAddress, port: sock.remotePort };
      const rid = sock._handle.takeStream();
      sock.destroy();
      const conn = new Proxy({ localAddr, remoteAddr }, {
        get: (t, k) => (typeof k === "symbol" && k.description === "Deno.internal.rid" ? rid : t[k]),
      });
      (async () => {
        for await (const ev of globalThis.Deno.serveHttp(conn)) {
          ev.respondWith(fetchHandler()).catch(() => {});
        }
      })().catch(() => {});
    }).listen({ fd: 3 });
  },

  "bun-serve-port": () => globalThis.Bun.serve({ port, hostname: HOST, fetch: fetchHandler }),
  "bun-emit-fd": () => netEmit(nodeHandler),
  "bun-emit-bridge-fd": () => netEmit(bridge),
  "bun-fast-fd": () => fast("bun"),
  // Bun.listen({ fd }) relaying bytes both ways to a private Bun.serve on a unix socket.
  "bun-relay-fd": async () => {
    const { mkdtempSync } = await import("node:fs");
    const path = `${mkdtempSync("/tmp/bench-relay-")}/s`;
    globalThis.Bun.serve({ unix: path, fetch: fetchHandler });
    const pipe = (from, to) => {
      const n = to.write(from);
      if (n < from.length) to.data.pending.push(from.slice(Math.max(n, 0)));
    };
    const flush = (s) => {
      const q = s.data.pending;
      while (q.length) {
        const n = s.write(q[0]);
        if (n < q[0].length) return void (q[0] = q[0].subarray(Math.max(n, 0)));
        q.shift();
      }
    };
    globalThis.Bun.listen({
      fd: 3,
      socket: {
        async open(client) {
          client.data = { pending: [], early: [] };
          const upstream = await globalThis.Bun.connect({
            unix: path,
            socket: {
              open(u) {
                u.data = { pending: [], peer: client };
              },
              data: (u, d) => pipe(d, u.data.peer),
              drain: flush,
              close: (u) => u.data.peer.end(),
            },
          });
          client.data.peer = upstream;
          for (const d of client.data.early) pipe(d, upstream);
        },
        data(client, d) {
          if (client.data.peer) pipe(d, client.data.peer);
          else client.data.early.push(d.slice());
        },
        drain: flush,
        close: (client) => client.data.peer?.end(),
      },
    });
  },

  // The package's serve() on the activated socket (Node: the build, as
  // users get it; Deno and Bun: the source, as JSR users get it).
  "pkg-serve": () => pkgServe(),
  // The same, run with SOCKET_ACTIVATE_HTTP_FAST=0 (bench/http.mjs passes it).
  "pkg-serve-supported": () => pkgServe(),
};

async function pkgServe() {
  const mod = await import(rt === "node" ? "../../dist/node.js" : "../../mod.ts");
  await mod.serve({}, fetchHandler);
}

async function fast(runtime) {
  const { serveFast } = await import(`../../runtimes/${runtime}/http_fast.ts`);
  const s = await serveFast(3, fetchHandler, { transport: "tcp" });
  if (s === null) throw new Error(`the ${runtime} fast path is unavailable here`);
}

if (!(variant in variants)) {
  console.error(`unknown variant "${variant}": one of ${Object.keys(variants).join(", ")}`);
  process.exit(2);
}
await variants[variant]();

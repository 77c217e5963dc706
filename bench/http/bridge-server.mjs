// One server for bench/http-node.mjs, on the activated fd 3 (run under
// systemd-socket-activate), in the Node line running it:
//   node bench/http/bridge-server.mjs <variant> <case>
// Variants: node-http (node:http's own handler, the baseline), serve (this
// package's serve(), a plain `new Response`), serve-fast (serve() answering
// with the package's FastResponse), srvx (srvx's toNodeHandler
// with its FastResponse), hono (@hono/node-server v2's getRequestListener, its
// defaults: it replaces the global Request and Response with its own),
// response (node:http building and reading a plain Response, no bridge: the
// floor of serve()'s `new Response` case; not run unless BRIDGE_VARIANTS
// names it).
// Cases: hello (GET -> "Hello, World!", text/plain) and echo (a JSON POST
// body parsed and answered as JSON).
import * as http from "node:http";

const [variant, kase] = process.argv.slice(2);
const BODY = "Hello, World!";
const TEXT = "text/plain;charset=UTF-8";
const JSON_TYPE = "application/json";

const fetchHandler = kase === "hello"
  ? () => new Response(BODY)
  : async (request) => Response.json(await request.json());

function nodeHandler(req, res) {
  if (kase === "hello") {
    res.setHeader("content-type", TEXT);
    return void res.end(BODY);
  }
  const chunks = [];
  req.on("data", (d) => chunks.push(d));
  req.on("end", () => {
    const body = JSON.stringify(JSON.parse(Buffer.concat(chunks).toString()));
    res.setHeader("content-type", JSON_TYPE);
    res.end(body);
  });
}

const onFd = (listener) => http.createServer(listener).listen({ fd: 3 });
const ready = () => process.stderr.write("ready\n");

if (variant === "response") {
  // What a plain `new Response(text)` costs any bridge in Node 24 and 26,
  // whose undici keeps the text out of reach: node:http's handler builds
  // the Response, reads its headers and its body stream, and sends what it
  // read as node:http's own handler does (no bridge around it); for echo,
  // `Response.json()` of the body node:http read.
  const body = (req) =>
    new Promise((ok) => {
      const chunks = [];
      req.on("data", (d) => chunks.push(d));
      req.on("end", () => ok(JSON.parse(Buffer.concat(chunks).toString())));
    });
  onFd(async (req, res) => {
    const r = kase === "hello" ? new Response(BODY) : Response.json(await body(req));
    const h = {};
    r.headers.forEach((v, k) => (h[k] = v));
    const reader = r.body.getReader();
    const { value } = await reader.read();
    await reader.read();
    h["content-length"] = String(value.byteLength);
    res.writeHead(200, h);
    res.end(Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("latin1"), "latin1");
  });
  ready();
} else if (variant === "node-http") {
  onFd(nodeHandler);
  ready();
} else if (variant === "serve") {
  const { serve } = await import("../../dist/node.js");
  await serve({}, fetchHandler);
  ready();
} else if (variant === "serve-fast") {
  const { FastResponse, serve } = await import("../../dist/node.js");
  const h = kase === "hello"
    ? () => new FastResponse(BODY)
    : async (request) => FastResponse.json(await request.json());
  await serve({}, h);
  ready();
} else if (variant === "srvx") {
  const { toNodeHandler, FastResponse } = await import("srvx/node");
  const h = kase === "hello"
    ? () => new FastResponse(BODY, { headers: { "content-type": TEXT } })
    : async (request) =>
      new FastResponse(JSON.stringify(await request.json()), { headers: { "content-type": JSON_TYPE } });
  onFd(toNodeHandler(h));
  ready();
} else if (variant === "hono") {
  const { getRequestListener } = await import("@hono/node-server");
  onFd(getRequestListener(fetchHandler));
  ready();
} else {
  throw new Error(`unknown variant ${variant}`);
}
// SIGINT exits through process.exit(), which writes a --cpu-prof profile.
process.once("SIGINT", () => process.exit(0));

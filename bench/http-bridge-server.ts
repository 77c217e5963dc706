// One HTTP server for bench/http-bridge.mjs: node:http on 127.0.0.1:<port>,
// the fetch-style handler bridged by one of:
//   hand         this package's bridge (runtimes/node_api/fetch.ts): a Request built for each request,
//                its own response writer
//   lazy         the same response writer with srvx's lazy NodeRequest
//   hono         @hono/node-server's getRequestListener, globals left alone
//   hono-global  the same with its default overrideGlobalObjects (it replaces
//                the global Request and Response: not something a library
//                may do to its users, measured for reference)
//   srvx         srvx's toNodeHandler
import * as http from "node:http";

const g = globalThis as { Deno?: { args: string[] } };
const [variant, port] = g.Deno?.args ?? process.argv.slice(2);
const entry = g.Deno
  ? "../runtimes/deno.ts"
  : (globalThis as { Bun?: unknown }).Bun
  ? "../runtimes/bun.ts"
  : "../runtimes/node.ts";
await import(entry); // registers the runtime shim the bridge reports errors through

type Listener = (req: http.IncomingMessage, res: http.ServerResponse) => void;
let listener: Listener;
const handler = (request: Request) => new Response(`hello ${new URL(request.url).pathname}`);
if (variant === "hand") {
  const { requestListener } = await import("../runtimes/node_api/fetch.ts");
  listener = requestListener(handler, "http", undefined, () => false);
} else if (variant === "lazy") {
  // The same response writer, with srvx's NodeRequest, which builds the real
  // Request only when the handler needs more than method, URL and headers.
  const { requestListener } = await import("../runtimes/node_api/fetch.ts");
  const { NodeRequest } = await import("srvx/node");
  listener = requestListener(
    handler,
    "http",
    undefined,
    () => false,
    (req, res) => new NodeRequest({ req, res }) as unknown as Request,
  );
} else if (variant === "hono" || variant === "hono-global") {
  const { getRequestListener } = await import("@hono/node-server");
  listener = getRequestListener(handler, { overrideGlobalObjects: variant === "hono-global" }) as Listener;
} else if (variant === "srvx") {
  const { toNodeHandler } = await import("srvx/node");
  listener = toNodeHandler(handler) as unknown as Listener;
} else {
  throw new Error(`unknown variant ${variant}`);
}
http.createServer(listener).listen(Number(port), "127.0.0.1", () => process.stderr.write("ready\n"));

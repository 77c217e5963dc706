// For bench/http-bridge.mjs: how long one variant's modules take to load, in
// this runtime, cold. Prints milliseconds on stdout.
//   base   node:http, which serve() loads in any case
//   srvx   node:http, then srvx/node (the NodeRequest serve() uses)
const g = globalThis;
const variant = g.Deno?.args[0] ?? process.argv[2];
const t0 = performance.now();
await import("node:http");
if (variant === "srvx") await import("srvx/node");
else if (variant !== "base") throw new Error(`unknown variant ${variant}`);
console.log((performance.now() - t0).toFixed(3));

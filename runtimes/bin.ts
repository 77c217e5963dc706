#!/usr/bin/env node
// The npm bin, built as CommonJS (tsup.config.ts). Node (npx, a unit's
// ExecStart=) runs a bundle with the Node shim only: the Deno and Bun shims
// are 40 KB more for Node to compile on every start (about 0.8 ms side by
// side). Another runtime running the bin (`deno run npm:socket-activate`,
// `bunx --bun`) goes on to runtimes/cli.ts, built apart with every shim.
import { setRuntime } from "../src/_runtime.ts";
import { main } from "../src/cli/main.ts";
import { nodeRuntime } from "./node/runtime.ts";

const g = globalThis as { Deno?: unknown; Bun?: unknown };
if (g.Deno !== undefined || g.Bun !== undefined) {
  // No top-level await in CommonJS; cli_all runs the CLI when it loads.
  import("./cli.ts");
} else {
  setRuntime(nodeRuntime);
  main(nodeRuntime.args()).then((code) => nodeRuntime.exit(code));
}

// The command line with every runtime's shim, whichever runs it: what the npm
// bin (runtimes/bin.ts) goes on to under Deno (`deno run npm:socket-activate`)
// and Bun (`bunx --bun`).
import { setRuntime } from "../src/_runtime.ts";
import { main } from "../src/cli/main.ts";
import { detectRuntime } from "./detect.ts";

const runtime = await detectRuntime();
setRuntime(runtime);
main(runtime.args()).then((code) => runtime.exit(code));

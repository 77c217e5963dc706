#!/usr/bin/env node
// The npm bin: whichever runtime runs it (node through npx, bun through
// `bunx --bun`), with that runtime's shim.
import { setRuntime } from "../src/_runtime.ts";
import { main } from "../src/cli.ts";
import { detectRuntime } from "./_detect.ts";
(globalThis as any).process?.stderr?.write?.("T cli-start " + performance.now().toFixed(2) + "\n");

const runtime = await detectRuntime();
(globalThis as any).process?.stderr?.write?.("T rt " + performance.now().toFixed(2) + "\n");
setRuntime(runtime);
main(runtime.args()).then((code) => runtime.exit(code));

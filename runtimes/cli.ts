#!/usr/bin/env node
// The npm bin: whichever runtime runs it (node through npx, bun through
// `bunx --bun`), with that runtime's shim.
import { setRuntime } from "../src/_runtime.ts";
import { main } from "../src/cli.ts";
import { detectRuntime } from "./_detect.ts";

const runtime = await detectRuntime();
setRuntime(runtime);
main(runtime.args()).then((code) => runtime.exit(code));

// For the entries that no export condition can pick for: mod.ts on JSR and
// the npm bin.
import type { Runtime } from "../src/_runtime.ts";
import { bunRuntime } from "./_bun.ts";
import { denoRuntime } from "./_deno.ts";
import { nodeRuntime } from "./_node.ts";

/** The shim for the runtime this code runs in. */
export function detectRuntime(): Runtime {
  const g = globalThis as { Deno?: unknown; Bun?: unknown };
  return g.Deno !== undefined ? denoRuntime : g.Bun !== undefined ? bunRuntime : nodeRuntime;
}

// For the entries that no export condition can pick for: mod.ts on JSR and
// the npm bin. Only the shim in use is loaded: every module costs start-up
// (Bun transpiles each TypeScript file it loads, about 0.1 ms apiece).
import type { Runtime } from "../src/_runtime.ts";

/** The shim for the runtime this code runs in. */
export async function detectRuntime(): Promise<Runtime> {
  const g = globalThis as { Deno?: unknown; Bun?: unknown };
  if (g.Deno !== undefined) {
    const deno = await import("./deno/runtime.ts");
    deno.cloexecAtImport(); // as runtimes/deno.ts does: Deno leaves inherited fds inheritable
    return deno.denoRuntime;
  }
  if (g.Bun !== undefined) return (await import("./bun/runtime.ts")).bunRuntime;
  return (await import("./node/runtime.ts")).nodeRuntime;
}

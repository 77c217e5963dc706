// Start-up variant (c) for Deno and Bun: the greeter (b), after importing
// mod.ts (as `deno run -A mod.ts` and `bun run mod.ts` do) and using none of
// it. (c) − (b) is what loading the package's code costs before any of it runs.
import "../mod.ts";

// A dynamic import: a static one would run the greeter while mod.ts still
// awaits its runtime shim (top-level await), not after it.
await import("Bun" in globalThis ? "./greeter-bun.mjs" : "./greeter-deno.mjs");

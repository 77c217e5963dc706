// Start-up variant (c) for Bun: the greeter (b), after importing the
// package's entry (mod.ts, as `bun run mod.ts` does) and using none of it. (c) − (b)
// is what loading the package's code costs before any of it runs.
import "../mod.ts";

// A dynamic import: a static one would run the greeter while mod.ts still
// awaits its runtime shim (top-level await), not after it.
await import("./greeter-bun.mjs");

/**
 * The package version; test/manifest.test.ts keeps it equal to package.json and deno.json.
 *
 * @example Say which version runs
 * ```ts
 * import { VERSION } from "@socket-activate/socket-activate";
 *
 * console.log(`socket-activate ${VERSION}`);
 * ```
 */
export const VERSION = "0.1.0";

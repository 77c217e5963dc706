/** The package version; test/manifest.test.ts keeps it equal to package.json and deno.json. */
export const VERSION = "0.1.0";

// What JSR scores and `deno doc --lint` does not check: every symbol the
// entries export has a description and an @example, and every entry has a
// @module doc. (test/run.sh type-checks the examples with `deno check --doc`.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as path from "node:path";
import { ROOT } from "./_util.ts";

const ENTRIES = ["mod.ts", "runtimes/node.ts", "runtimes/deno.ts", "runtimes/bun.ts"];

interface Tag {
  kind: string;
}
interface Declaration {
  kind: string;
  location: { filename: string; line: number };
  jsDoc?: { doc?: string; tags?: Tag[] };
}
interface DocJson {
  nodes: Record<string, {
    module_doc?: { doc?: string; tags?: Tag[] };
    symbols?: { name: string; declarations: Declaration[] }[];
  }>;
}

const doc: DocJson = JSON.parse(
  execFileSync(path.join(ROOT, "node_modules", ".bin", "deno"), ["doc", "--json", ...ENTRIES], {
    cwd: ROOT,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"],
    env: { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
  }),
);

test("every entry has a @module doc with an example", () => {
  for (const entry of ENTRIES) {
    const node = doc.nodes[`file://${path.join(ROOT, entry)}`];
    assert.ok(node, `deno doc has no module ${entry}`);
    const tags = node.module_doc?.tags ?? [];
    assert.ok(tags.some((t) => t.kind === "module"), `${entry}: no @module`);
    assert.ok(tags.some((t) => t.kind === "example"), `${entry}: no @example in the module doc`);
  }
});

test("every exported symbol has a description and an @example", () => {
  const missing: string[] = [];
  let checked = 0;
  for (const node of Object.values(doc.nodes)) {
    for (const symbol of node.symbols ?? []) {
      // A re-export is documented where it is declared (also in this list).
      for (const d of symbol.declarations.filter((d) => d.kind !== "reference")) {
        checked++;
        const where = `${symbol.name} (${
          path.relative(ROOT, new URL(d.location.filename).pathname)
        }:${d.location.line})`;
        if (!d.jsDoc?.doc?.trim()) missing.push(`${where}: no description`);
        if (!(d.jsDoc?.tags ?? []).some((t) => t.kind === "example")) missing.push(`${where}: no @example`);
      }
    }
  }
  assert.ok(checked >= 40, `only ${checked} declarations found: is deno doc --json's shape still the same?`);
  assert.deepEqual(missing, []);
});

test("docs/layout.md lists every source file, and only files that exist", async () => {
  const fs = await import("node:fs");
  const page = fs.readFileSync(path.join(ROOT, "docs", "layout.md"), "utf8");
  const listed = new Set([...page.matchAll(/^\| `([\w/.]+\.ts)`/gm)].map((m) => m[1]));
  const sources = ["runtimes", "src"].flatMap((dir) =>
    (fs.readdirSync(path.join(ROOT, dir), { recursive: true }) as string[])
      .filter((f) => f.endsWith(".ts")).map((f) => `${dir}/${f}`)
  );
  const unlisted = sources.filter((f) => !listed.has(f));
  assert.deepEqual(unlisted, [], "source files docs/layout.md does not list");
  const gone = [...listed].filter((f) => !fs.existsSync(path.join(ROOT, f)));
  assert.deepEqual(gone, [], "files docs/layout.md lists that do not exist");
});

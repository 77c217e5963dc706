// The client of bench/notify.mjs, in the runtime under test: argv[2] is the
// package entry to import (dist/node.js for Node, mod.ts for Deno and Bun),
// argv[3] the number of messages. After 200 unmeasured notify() calls, times
// argv[3] sequential `await notify("STATUS=...")` to NOTIFY_SOCKET and prints
// the milliseconds per message.
const sa = await import(process.argv[2]);
const n = Number(process.argv[3]);
for (let i = 0; i < 200; i++) await sa.notify(`STATUS=warm ${i}`);
const t0 = performance.now();
for (let i = 0; i < n; i++) await sa.notify(`STATUS=message ${i}`);
console.log(((performance.now() - t0) / n).toFixed(5));

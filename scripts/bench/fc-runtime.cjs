// Calls a built fc-snapshot the way FC's Node.js runtime does: `require` of index.js, then
// `handler(event as a Buffer, context)`. Plain JavaScript, so that a capped run pays for the
// function's own start-up and nothing of tsx's.
//   node fc-runtime.cjs <function-dir> <event-json> <timeout-s>
// Prints one JSON line: when the process started, when index.js was loaded, Node's own CPU, and the result.
'use strict';
const path = require('node:path');
const { performance } = require('node:perf_hooks');

async function main() {
  const [dir, eventJson, timeout] = process.argv.slice(2);
  const startedAt = performance.timeOrigin;
  const { handler } = require(path.join(dir, 'index.js'));
  const loadedAt = Date.now();
  const result = await handler(Buffer.from(eventJson), {
    requestId: `bench-${process.pid}`,
    function: { name: 'fc-snapshot', timeout: Number(timeout) },
    region: 'cn-hangzhou',
  });
  // Node's own CPU (all its threads; its ffmpegs are children, not counted here), in µs.
  const nodeCpu = process.cpuUsage();
  process.stdout.write(`${JSON.stringify({ startedAt, loadedAt, nodeCpu, result })}\n`);
}

main().catch((error) => {
  process.stderr.write(`${error.stack}\n`);
  process.exit(1);
});

// CommonJS, like the rest of the project ("type": "commonjs"): with `import`/`export` here, Vite
// warns on every run that a future native config loader would load this file as CommonJS and fail.
const { defineConfig } = require('vitest/config') as typeof import('vitest/config');

module.exports = defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // End-to-end tests run real ffmpeg and RTMP servers: give them room, and keep
    // the number of concurrent streams within a 2-core machine.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    maxWorkers: 2,
  },
});

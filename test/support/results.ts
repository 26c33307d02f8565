import { expect } from 'vitest';

/**
 * A stored file's Message: "ok", maybe with the notes a loaded machine can add (pictures shed,
 * late audio cut), and nothing else (no multipart fallback, no problem).
 */
export const okMessage = expect.stringMatching(/^ok(; \d+ frames not encoded because[^;]*|; \d+ ms of audio came too late[^;]*)*$/);

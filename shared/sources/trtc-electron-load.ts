import Module from 'node:module';
import { dirname, sep } from 'node:path';
import type { TrtcSdkModule } from './trtc-electron-types';

/*
 * trtc-electron-sdk's JavaScript is written for a page (Electron's renderer). Read in its published
 * 13.3.801 code, outside a page it fails:
 * - on `require`: Renderer/index.js probes WebGL with `document.createElement('canvas')`, and
 *   base/DevicePixelRatioObserver.js reads `window.devicePixelRatio` and `window.matchMedia`;
 * - in the TRTCCloud constructor: `window.__TRTCElectron` / `window.localStorage` (getComponentNO);
 * - on entering: `window.navigator.userAgent` (handleOnEnterRoom).
 * Outside a page (Node, Electron's main process), those names are given to the SDK's own modules
 * only, as module-scope variables: a global `window` would change other code, e.g.
 * cos-nodejs-sdk-v5 takes it for a browser and prints warnings on stdout for every client.
 * What they hold is what the recorder's calls need: no canvas (it renders nothing; frames come
 * through the custom render callback), no stored component name, a user agent naming Node.
 */

/** Where the SDK's modules find the stand-ins (a registry symbol: nothing else looks it up). */
const RENDERER_GLOBALS = Symbol.for('serverless-media.trtc-electron-sdk.renderer-globals');

function rendererGlobals(): { window: unknown; document: unknown } {
  const noCanvas = { width: 0, height: 0, getContext: () => null };
  const noEvents = { addEventListener: () => {}, removeEventListener: () => {} };
  const window = {
    ...noEvents,
    devicePixelRatio: 1,
    matchMedia: () => ({ ...noEvents, matches: false }),
    navigator: { userAgent: `Node.js/${process.version} (${process.platform}; trtc-electron-sdk outside a page)`, platform: process.platform },
  };
  return { window, document: { ...noEvents, hidden: true, createElement: () => noCanvas } };
}

/**
 * `require('trtc-electron-sdk')`; in a page it loads as it is, elsewhere with `window` and
 * `document` stand-ins visible to the SDK's modules alone.
 */
export function requireTrtcElectronSdk(): TrtcSdkModule {
  if (typeof (globalThis as { document?: unknown }).document !== 'undefined') return require('trtc-electron-sdk') as TrtcSdkModule;
  const packageDir = dirname(require.resolve('trtc-electron-sdk/package.json')) + sep;
  (globalThis as Record<symbol, unknown>)[RENDERER_GLOBALS] ??= rendererGlobals();
  const prologue = `var window = globalThis[Symbol.for(${JSON.stringify(RENDERER_GLOBALS.description)})].window, document = globalThis[Symbol.for(${JSON.stringify(RENDERER_GLOBALS.description)})].document;`;
  const internals = Module.prototype as unknown as { _compile(content: string, filename: string): unknown };
  const compile = internals._compile;
  // On the first line, so the SDK's line numbers (and stack traces) stay as published.
  internals._compile = function (content, filename) {
    return compile.call(this, filename.startsWith(packageDir) ? prologue + content : content, filename);
  };
  try {
    return require('trtc-electron-sdk') as TrtcSdkModule;
  } finally {
    internals._compile = compile;
  }
}

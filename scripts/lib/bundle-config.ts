/**
 * What `npm run build` bundles, shared by the build, the packager, the cold-start benchmark and
 * the descriptor tests, so they all agree on names, entries and the lazily loaded SDKs.
 */
import { join, resolve } from 'node:path';

export const ROOT = resolve(__dirname, '..', '..');
export const DIST = join(ROOT, 'dist');

export type FunctionName = 'fc-snapshot' | 'scf-record';

export interface FunctionSpec {
  name: FunctionName;
  /** TypeScript entry, relative to the repository root. */
  entry: string;
  /** The export the platform calls; the descriptor's handler is `index.<handlerExport>`. */
  handlerExport: string;
  /** The descriptor that deploys it, relative to the root. */
  descriptor: string;
  /** The SDK packages this function's code uses (for the eager variant of the cold-start benchmark). */
  ownSdks: string[];
  /** Code that must never be part of this function's package (paths or package names, as in the metafile). */
  forbidden: RegExp[];
  /**
   * Further programs built into the same folder beside index.js. They `require('./index.js')` for
   * whatever they import from `entry` rather than carrying a second copy of the handler.
   */
  extraEntries?: ExtraEntry[];
  /** Files copied beside index.js as they are, relative to the root (the code finds them in its own folder). */
  assets?: string[];
}

export interface ExtraEntry {
  /** TypeScript entry, relative to the repository root. */
  entry: string;
  /** File name in the function folder, e.g. `image-server.js`. */
  outfile: string;
}

export const FUNCTIONS: Record<FunctionName, FunctionSpec> = {
  'fc-snapshot': {
    name: 'fc-snapshot',
    entry: 'functions/fc-snapshot/index.ts',
    handlerExport: 'handler',
    descriptor: 's.yaml',
    ownSdks: ['ali-oss'],
    forbidden: [/cos-nodejs-sdk-v5/, /tencentcloud-sdk-nodejs/, /trtc-electron-sdk/, /shared\/storage\/cos\./, /shared\/trtc\//, /shared\/recording\//],
  },
  'scf-record': {
    name: 'scf-record',
    entry: 'functions/scf-record/index.ts',
    handlerExport: 'main_handler',
    descriptor: 'serverless.yml',
    ownSdks: ['cos-nodejs-sdk-v5', 'tencentcloud-sdk-nodejs'],
    forbidden: [/(^|\/)ali-oss\//, /shared\/storage\/oss\./],
    // The SCF image-function server (port 9000, POST /event-invoke): `node image-server.js`.
    extraEntries: [{ entry: 'functions/scf-record/image-server.ts', outfile: 'image-server.js' }],
    // The liteav room process (shared/sources/liteav/liteav-room.ts runs it from beside the bundle).
    assets: ['shared/sources/liteav/room_process.py'],
  },
};

export const FUNCTION_NAMES = Object.keys(FUNCTIONS) as FunctionName[];

/**
 * Cloud SDKs the code `require`s inside factories. Each specifier the code uses is left out of the
 * function's bundle and shipped pre-bundled as its own file under the package's `node_modules/`,
 * where Node finds it on the first `require` — so a cold start does not even parse SDK code.
 */
export const LAZY_SDK_PACKAGES = ['ali-oss', 'cos-nodejs-sdk-v5', 'tencentcloud-sdk-nodejs'];

/**
 * Never bundled:
 * - `trtc-electron-sdk`: optional, a native addon that needs an Electron host; the recorder reports
 *   TrtcSdkUnavailable when it is missing.
 * - `proxy-agent`: an optional dependency urllib (inside ali-oss) requires only when a proxy is
 *   configured; it is not installed, exactly as without bundling.
 */
export const ALWAYS_EXTERNAL = ['trtc-electron-sdk', 'proxy-agent'];

/** The static ffmpeg the build copies next to each bundle (see shared/ffmpeg/binary.ts). */
export const PACKAGED_FFMPEG = join('bin', 'ffmpeg');

/** Node 20 on both platforms (FC `nodejs20`, SCF `Nodejs20.19`). */
export const NODE_TARGET = 'node20';

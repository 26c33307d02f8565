import { ConfigurationError } from './errors';

/**
 * The one typed reader of the environment. Handlers call it once and pass plain
 * values into the core, which never touches process.env itself. A value that is set but
 * malformed fails here, naming the variable: it never silently becomes the default.
 */
export interface RuntimeConfig {
  ffmpegPath?: string;
  /** Region the function runs in (FC sets FC_REGION). */
  functionRegion?: string;
  ossEndpoint?: string;
  alibabaCredentials?: { accessKeyId: string; accessKeySecret: string; securityToken?: string };
  /** e.g. `http://127.0.0.1:9001`: COS requests go there, keeping the virtual-host Host header. */
  cosEndpoint?: string;
  /** The SCF function role's temporary keys (or long-term keys set by hand). */
  tencentCredentials?: { secretId: string; secretKey: string; sessionToken?: string };
  /** e.g. `http://127.0.0.1:9003`: TRTC API calls (the Stop action's RemoveUser) go there, still signed as service `trtc`. */
  trtcApiEndpoint?: string;
  /** The TencentCloud API region for TRTC room calls; RemoveUser accepts ap-beijing, ap-guangzhou and ap-singapore. */
  trtcRegion: string;
  /** Which SDK joins the room for a Record: liteav (the default on Linux) or trtc-electron-sdk. */
  trtcRoomSdk: TrtcRoomSdk;
  /** TRTC_ROOM_SDK as given when it names neither: a Record then fails saying so. */
  trtcRoomSdkUnknown?: string;
  /** A Python 3 that imports liteav; unset: the project's .venv/ (npm ci makes it). */
  liteavPython?: string;
  callbackSecret?: string;
  /** The bearer secret an HTTP Stop must present (`Authorization: Bearer …`); unset, HTTP Stop is refused. */
  controlSecret?: string;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  /** Work dirs are made below this (MEDIA_TMP_DIR). */
  workRoot: string;
  /** Local disk a job may use for what storage could not take yet (spill files). */
  spillLimitBytes: number;
  /** The FC snapshot function's own settings. */
  snapshot: {
    /** Capture stops this long before the deadline (FLUSH_MARGIN_MS): images are small, uploads quick. */
    finalizeMarginMs: number;
    uploadConcurrency: number;
  };
  /** The SCF recorder's own settings. */
  record: {
    /** Recording stops this long before the deadline (FINALIZE_MARGIN_MS): encoders finish, large objects complete. */
    finalizeMarginMs: number;
  };
}

export type Env = Record<string, string | undefined>;

const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export const TRTC_ROOM_SDKS = ['liteav', 'electron'] as const;
export type TrtcRoomSdk = (typeof TRTC_ROOM_SDKS)[number];

/** `platform` picks the default room SDK: Tencent ships liteav for Linux, the Electron SDK for Windows and macOS. */
export function readConfig(env: Env, platform: NodeJS.Platform = process.platform): RuntimeConfig {
  const nonEmpty = (name: string) => (env[name] && env[name]!.trim() !== '' ? env[name]!.trim() : undefined);
  const accessKeyId = nonEmpty('ALIBABA_CLOUD_ACCESS_KEY_ID');
  const accessKeySecret = nonEmpty('ALIBABA_CLOUD_ACCESS_KEY_SECRET');
  const secretId = nonEmpty('TENCENTCLOUD_SECRETID');
  const secretKey = nonEmpty('TENCENTCLOUD_SECRETKEY');
  const level = nonEmpty('LOG_LEVEL')?.toLowerCase();
  const roomSdk = nonEmpty('TRTC_ROOM_SDK')?.toLowerCase();
  const knownRoomSdk = (TRTC_ROOM_SDKS as readonly string[]).includes(roomSdk ?? '') ? (roomSdk as TrtcRoomSdk) : undefined;
  return {
    ffmpegPath: nonEmpty('FFMPEG_PATH'),
    functionRegion: nonEmpty('FC_REGION') ?? nonEmpty('ALIBABA_CLOUD_REGION'),
    ossEndpoint: nonEmpty('OSS_ENDPOINT'),
    alibabaCredentials:
      accessKeyId && accessKeySecret
        ? { accessKeyId, accessKeySecret, securityToken: nonEmpty('ALIBABA_CLOUD_SECURITY_TOKEN') }
        : undefined,
    cosEndpoint: nonEmpty('COS_ENDPOINT'),
    tencentCredentials:
      secretId && secretKey ? { secretId, secretKey, sessionToken: nonEmpty('TENCENTCLOUD_SESSIONTOKEN') } : undefined,
    trtcApiEndpoint: nonEmpty('TRTC_API_ENDPOINT'),
    trtcRegion: nonEmpty('TRTC_REGION') ?? 'ap-guangzhou',
    trtcRoomSdk: knownRoomSdk ?? (platform === 'linux' ? 'liteav' : 'electron'),
    ...(roomSdk !== undefined && !knownRoomSdk ? { trtcRoomSdkUnknown: nonEmpty('TRTC_ROOM_SDK') } : {}),
    liteavPython: nonEmpty('TRTC_LITEAV_PYTHON'),
    callbackSecret: nonEmpty('CALLBACK_SECRET'),
    controlSecret: nonEmpty('CONTROL_SECRET'),
    logLevel: level === undefined ? 'info' : oneOf('LOG_LEVEL', level, LOG_LEVELS),
    workRoot: nonEmpty('MEDIA_TMP_DIR') ?? '/tmp',
    spillLimitBytes: Math.floor(positiveNumber('SPILL_LIMIT_MB', nonEmpty('SPILL_LIMIT_MB')) ?? 256) * 1024 * 1024,
    snapshot: {
      finalizeMarginMs: positiveNumber('FLUSH_MARGIN_MS', nonEmpty('FLUSH_MARGIN_MS')) ?? 10_000,
      uploadConcurrency: positiveInteger('UPLOAD_CONCURRENCY', nonEmpty('UPLOAD_CONCURRENCY')) ?? 4,
    },
    record: {
      finalizeMarginMs: positiveNumber('FINALIZE_MARGIN_MS', nonEmpty('FINALIZE_MARGIN_MS')) ?? 60_000,
    },
  };
}

function oneOf<T extends string>(name: string, value: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new ConfigurationError('InvalidConfig', `${name} must be one of ${allowed.join(', ')}; got ${JSON.stringify(value)}`);
}

function positiveNumber(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed <= 0) throw new ConfigurationError('InvalidConfig', `${name} must be a positive number; got ${JSON.stringify(value)}`);
  return parsed;
}

function positiveInteger(name: string, value: string | undefined): number | undefined {
  const parsed = positiveNumber(name, value);
  if (parsed !== undefined && !Number.isInteger(parsed)) throw new ConfigurationError('InvalidConfig', `${name} must be a whole number; got ${JSON.stringify(value)}`);
  return parsed;
}

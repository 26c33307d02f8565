/**
 * The one typed reader of the environment. Handlers call it once and pass plain
 * values into the core, which never touches process.env itself.
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
  tmpRoot: string;
  /** Capture stops this long before the function deadline, to flush uploads. */
  flushMarginMs: number;
  /** Recording stops this long before the deadline, to finalise and upload recordings. */
  finalizeMarginMs: number;
  /** Local disk a recording may use for what storage could not take yet (spill files). */
  spillLimitBytes: number;
  uploadConcurrency: number;
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
    logLevel: (LOG_LEVELS as readonly string[]).includes(level ?? '') ? (level as RuntimeConfig['logLevel']) : 'info',
    tmpRoot: nonEmpty('MEDIA_TMP_DIR') ?? '/tmp',
    flushMarginMs: positiveNumber(nonEmpty('FLUSH_MARGIN_MS')) ?? 10_000,
    finalizeMarginMs: positiveNumber(nonEmpty('FINALIZE_MARGIN_MS')) ?? 60_000,
    spillLimitBytes: mebibytes(positiveNumber(nonEmpty('SPILL_LIMIT_MB')) ?? 256)!,
    uploadConcurrency: positiveNumber(nonEmpty('UPLOAD_CONCURRENCY')) ?? 4,
  };
}

function mebibytes(value: number | undefined): number | undefined {
  return value === undefined ? undefined : Math.floor(value * 1024 * 1024);
}

function positiveNumber(value: string | undefined): number | undefined {
  const parsed = Number(value);
  return value !== undefined && Number.isFinite(parsed) && parsed > 0 ? parsed : undefined;
}

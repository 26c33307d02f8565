import * as z from 'zod';
import { callbackUrlProblem } from '../../shared/callback';
import { ValidationError } from '../../shared/errors';
import { normalizePrefix } from '../../shared/naming';
import type { RecordJob } from '../../shared/recording/record-job';
import type { Subscription } from '../../shared/sources/room-source';
import { defaultOutputFormat, OUTPUT_FORMATS, RECORD_MODES } from '../../shared/outputs/recording/encoder-args';
import { COS_BUCKET_NAME, COS_BUCKET_NAME_RULE } from '../../shared/storage/cos';
import { parseOrThrow } from '../../shared/validation';

/** TRTC: numeric room ids are 1 … 4294967294. */
const roomIdField = z
  .number({ error: 'must be a number (use StrRoomId for string room ids)' })
  .int('must be a whole number')
  .min(1, 'must be at least 1')
  .max(4_294_967_294, 'must be at most 4294967294');
/** TRTC: up to 64 bytes of letters, digits and a set of punctuation. */
const strRoomIdField = z
  .string({ error: 'must be a string' })
  .regex(/^[A-Za-z0-9 !#$%&()+\-:;<=.>?@[\]^_{}|~,]{1,64}$/, 'must be 1-64 letters, digits or TRTC-allowed punctuation');
/** TRTC: user ids are up to 32 letters, digits, underscores and hyphens. */
/** TRTC user ids as this function accepts them (they become object-key segments). */
const USER_ID = /^[A-Za-z0-9_-]{1,32}$/;
const userIdField = z.string({ error: 'must be a string' }).regex(USER_ID, 'must be 1-32 letters, digits, _ or -');
const sdkAppIdField = z.number({ error: 'must be a number' }).int('must be a whole number').positive('must be positive');

const wholeNumber = (min: number, max: number, unit: string) =>
  z
    .number({ error: `must be a whole number of ${unit}, ${min} to ${max}` })
    .int(`must be a whole number of ${unit}`)
    // "at least 1 minute", not "1 minutes".
    .min(min, `must be at least ${min} ${min === 1 ? unit.replace(/s$/, '') : unit}`)
    .max(max, `must be at most ${max} ${unit}`);

/** TRTC's SubscribeStreamUserIds lists take up to 32 user ids. */
const MAX_SUBSCRIBE_USERS = 32;
const userIdList = z
  .array(z.string({ error: 'must be user ids (strings)' }).regex(USER_ID, 'must be user ids of 1-32 letters, digits, _ or -'), {
    error: `must be a list of user ids (at most ${MAX_SUBSCRIBE_USERS})`,
  })
  .min(1, 'must list at least one user id')
  .max(MAX_SUBSCRIBE_USERS, `must list at most ${MAX_SUBSCRIBE_USERS} user ids`);

const roomFields = { SdkAppId: sdkAppIdField, RoomId: roomIdField.optional(), StrRoomId: strRoomIdField.optional() };

const cosConfigSchema = z
  .strictObject({
    SecretId: z.string({ error: 'must be a string' }).min(1, 'must not be empty').optional(),
    SecretKey: z.string({ error: 'must be a string' }).min(1, 'must not be empty').optional(),
    Region: z.string({ error: 'must be a string' }).regex(/^[a-z]+-[a-z0-9-]+$/, 'must be a COS region such as ap-guangzhou'),
    Bucket: z.string({ error: 'must be a string' }).regex(COS_BUCKET_NAME, COS_BUCKET_NAME_RULE),
    Path: z
      .string({ error: 'must be a string' })
      .max(512, 'must be at most 512 characters')
      .refine((path) => path.startsWith('/'), "must start with '/' ('/' is the bucket root)")
      .refine((path) => !/[\u0000-\u001f\u007f\\]/.test(path), 'must not contain control characters or backslashes')
      .refine((path) => !path.split('/').some((part) => part === '.' || part === '..'), 'must not contain . or .. segments'),
  })
  .superRefine((cos, ctx) => {
    if ((cos.SecretId === undefined) !== (cos.SecretKey === undefined)) {
      ctx.addIssue({ code: 'custom', path: [cos.SecretId === undefined ? 'SecretId' : 'SecretKey'], message: 'SecretId and SecretKey go together: give both or neither' });
    }
  });

/** An http(s) URL we may POST to: never a metadata or link-local address. */
const callbackUrlField = () =>
  z.string({ error: 'must be a string' }).superRefine((url, ctx) => {
    const problem = callbackUrlProblem(url);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

export const recordRequestSchema = z
  .strictObject({
    Action: z.literal(['Record', 'Start'], { error: 'must be Record (the default) or Stop' }).optional(),
    ...roomFields,
    UserId: userIdField,
    UserSig: z.string({ error: 'must be a string' }).min(1, 'must not be empty').max(4096, 'must be at most 4096 characters'),
    CosConfig: cosConfigSchema,
    Mode: z.enum(RECORD_MODES, { error: 'must be "00" (audio → MP3), "01" (video → MP4) or "02" (both → MP4)' }).default('00'),
    OutputFormat: z.enum(OUTPUT_FORMATS, { error: 'must be "mp4", "mp3" (Mode "00" only), "hls" or "hls+mp4"' }).optional(),
    Callback: callbackUrlField().optional(),
    EventCallback: callbackUrlField().optional(),
    // Room controls, as TRTC's cloud recording names them. All optional.
    MaxIdleTime: wholeNumber(5, 86_400, 'seconds').optional(),
    SubscribeUserIds: userIdList.optional(),
    UnSubscribeUserIds: userIdList.optional(),
    MaxMediaFileDuration: wholeNumber(1, 1_440, 'minutes').optional(),
    SnapshotInterval: wholeNumber(1, 3_600, 'seconds').optional(),
  });

export const stopRequestSchema = z.strictObject({ Action: z.literal('Stop'), ...roomFields, UserId: userIdField });

export type RecordRequest = z.infer<typeof recordRequestSchema>;
export type StopRequest = z.infer<typeof stopRequestSchema>;

export type ParsedRequest = { action: 'record'; request: RecordRequest } | { action: 'stop'; request: StopRequest };

/** Which request this is, validated; every problem is reported at once. */
export function parseRequest(body: unknown): ParsedRequest {
  const fields =
    typeof body === 'object' && body !== null
      ? (body as {
          Action?: unknown;
          RoomId?: unknown;
          StrRoomId?: unknown;
          SubscribeUserIds?: unknown;
          UnSubscribeUserIds?: unknown;
          SnapshotInterval?: unknown;
          Mode?: unknown;
          OutputFormat?: unknown;
        })
      : {};
  const action = fields.Action;
  if (action !== undefined && action !== 'Record' && action !== 'Start' && action !== 'Stop') {
    throw new ValidationError([{ field: 'Action', message: 'must be Record (the default) or Stop' }]);
  }
  // Checked beside the schema, not inside it: zod skips object refinements once a field fails.
  const roomIssues = fields.RoomId === undefined && fields.StrRoomId === undefined ? [{ field: 'RoomId', message: 'RoomId or StrRoomId is required' }] : [];
  if (action !== 'Stop') {
    if (fields.SubscribeUserIds !== undefined && fields.UnSubscribeUserIds !== undefined) {
      roomIssues.push({ field: 'UnSubscribeUserIds', message: 'give SubscribeUserIds (whom to record) or UnSubscribeUserIds (whom not to), not both' });
    }
    if (fields.SnapshotInterval !== undefined && (fields.Mode === undefined || fields.Mode === '00')) {
      roomIssues.push({ field: 'SnapshotInterval', message: 'applies only when recording video: Mode "01" or "02"' });
    }
    if (fields.OutputFormat === 'mp3' && fields.Mode !== undefined && fields.Mode !== '00') {
      roomIssues.push({ field: 'OutputFormat', message: 'mp3 holds audio alone: use Mode "00", or "mp4", "hls" or "hls+mp4" to record video' });
    }
  }
  const parse = <T>(schema: z.ZodType<T> & { shape: object }): T => {
    let request: T | undefined;
    let issues = roomIssues;
    try {
      request = parseOrThrow(schema, body, Object.keys(schema.shape));
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      issues = [...error.issues, ...roomIssues];
    }
    if (issues.length || request === undefined) throw new ValidationError(issues);
    return request;
  };
  return action === 'Stop' ? { action: 'stop', request: parse(stopRequestSchema) } : { action: 'record', request: parse(recordRequestSchema) };
}

/** When both room ids are given, RoomId wins, as in TRTC itself. */
export function roomOf(request: { RoomId?: number; StrRoomId?: string }): { roomId?: number; strRoomId?: string } {
  return request.RoomId !== undefined ? { roomId: request.RoomId } : { strRoomId: request.StrRoomId };
}

/** A validated Record request + the invocation's id → the core's job. */
export function toRecordJob(request: RecordRequest, requestId: string): RecordJob {
  return {
    requestId,
    sdkAppId: request.SdkAppId,
    roomId: request.RoomId,
    strRoomId: request.StrRoomId,
    userId: request.UserId,
    userSig: request.UserSig,
    mode: request.Mode,
    outputFormat: request.OutputFormat ?? defaultOutputFormat(request.Mode),
    bucket: request.CosConfig.Bucket,
    region: request.CosConfig.Region,
    keyPrefix: normalizePrefix(request.CosConfig.Path),
    callbackUrl: request.Callback,
    eventCallbackUrl: request.EventCallback,
    maxIdleSec: request.MaxIdleTime,
    subscription: subscriptionOf(request),
    maxPieceSec: request.MaxMediaFileDuration === undefined ? undefined : request.MaxMediaFileDuration * 60,
    snapshotIntervalSec: request.SnapshotInterval,
  };
}

function subscriptionOf(request: RecordRequest): Subscription | undefined {
  if (request.SubscribeUserIds) return { allow: request.SubscribeUserIds };
  if (request.UnSubscribeUserIds) return { deny: request.UnSubscribeUserIds };
  return undefined;
}

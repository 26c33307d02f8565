import * as z from 'zod';
import { callbackUrlProblem } from '../../shared/callback';
import { ValidationError } from '../../shared/errors';
import { IMAGE_FORMATS, LOSSY_FORMATS } from '../../shared/outputs/images/format';
import { normalizePrefix } from '../../shared/naming';
import { STREAM_RECORD_FORMATS } from '../../shared/outputs/recording/stream-copy';
import type { SnapshotJob } from '../../shared/snapshot/job';
import { sourceUrlProblem } from '../../shared/source-url';
import { parseOrThrow } from '../../shared/validation';

const urlField = (problem: (value: string) => string | null) =>
  z.string({ error: 'must be a string' }).superRefine((value, ctx) => {
    const message = problem(value);
    if (message) ctx.addIssue({ code: 'custom', message });
  });

const seconds = (min: number, max: number) =>
  z.number({ error: 'must be a number of seconds' }).min(min, `must be at least ${min}`).max(max, `must be at most ${max}`);

const BUCKET_NAME = /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/;
const REGION = /^(oss-)?[a-z]{2,}-[a-z0-9-]+$/;

/** The FC event: the seed's four fields, plus optional extras. */
export const snapshotEventSchema = z
  .strictObject({
    rtmp_url: urlField(sourceUrlProblem),
    bucket: z.string({ error: 'must be a string' }).regex(BUCKET_NAME, 'must be an OSS bucket name: 3-63 lowercase letters, digits and hyphens'),
    region: z.string({ error: 'must be a string' }).regex(REGION, 'must be a region id such as cn-hangzhou').optional(),
    dst: z
      .string({ error: 'must be a string' })
      .max(512, 'must be at most 512 characters')
      .refine((value) => !/[\u0000-\u001f\u007f\\]/.test(value), 'must not contain control characters or backslashes')
      .refine((value) => !value.split('/').some((part) => part === '.' || part === '..'), 'must not contain . or .. segments')
      .optional(),
    interval: seconds(0.1, 3600).default(1),
    format: z.enum(IMAGE_FORMATS, { error: `must be one of ${IMAGE_FORMATS.join(', ')}` }).default('jpg'),
    width: z
      .number({ error: 'must be a number of pixels' })
      .int('must be a whole number of pixels')
      .min(16, 'must be at least 16')
      .max(7680, 'must be at most 7680')
      .refine((value) => value % 2 === 0, 'must be even (video scalers need even sizes)')
      .optional(),
    quality: z.number({ error: 'must be a number from 1 to 100' }).int('must be a whole number').min(1, 'must be at least 1').max(100, 'must be at most 100').optional(),
    max_snapshots: z.number({ error: 'must be a number' }).int('must be a whole number').min(1, 'must be at least 1').max(1_000_000, 'must be at most 1000000').optional(),
    max_duration: seconds(1, 86_400).optional(),
    idle_timeout: seconds(2, 600).default(10),
    connect_timeout: seconds(1, 600).default(30),
    latest: z.boolean({ error: 'must be true or false' }).default(false),
    callback: urlField(callbackUrlProblem).optional(),
    record: z.enum(STREAM_RECORD_FORMATS, { error: `must be one of ${STREAM_RECORD_FORMATS.join(', ')}` }).optional(),
    record_max_duration: z.number({ error: 'must be a number of minutes' }).min(1, 'must be at least 1 minute').max(1440, 'must be at most 1440 minutes').optional(),
  })
  .superRefine((event, ctx) => {
    if (event.quality !== undefined && !LOSSY_FORMATS.includes(event.format)) {
      ctx.addIssue({ code: 'custom', path: ['quality'], message: `applies only to ${LOSSY_FORMATS.join(' and ')}; png is lossless` });
    }
    if (event.record_max_duration !== undefined && event.record === undefined) {
      ctx.addIssue({ code: 'custom', path: ['record_max_duration'], message: 'applies only with record ("mp4" or "flv")' });
    }
  });

export type SnapshotEvent = z.infer<typeof snapshotEventSchema>;
export const SNAPSHOT_EVENT_FIELDS = Object.keys(snapshotEventSchema.shape);

/** Validated event + the function's own context → the core's job. */
export function toSnapshotJob(rawEvent: unknown, requestId: string, functionRegion: string | undefined): SnapshotJob {
  const event = parseOrThrow(snapshotEventSchema, rawEvent, SNAPSHOT_EVENT_FIELDS);
  const region = (event.region ?? functionRegion)?.replace(/^oss-/, '');
  if (!region) throw new ValidationError([{ field: 'region', message: "is required: the function's region (FC_REGION) is unknown" }]);
  return {
    requestId,
    sourceUrl: event.rtmp_url,
    bucket: event.bucket,
    region,
    prefix: normalizePrefix(event.dst),
    intervalSec: event.interval,
    format: event.format,
    width: event.width,
    quality: event.quality,
    maxSnapshots: event.max_snapshots,
    maxDurationSec: event.max_duration,
    idleTimeoutSec: event.idle_timeout,
    connectTimeoutSec: event.connect_timeout,
    latest: event.latest,
    callbackUrl: event.callback,
    record: event.record,
    recordMaxDurationSec: event.record_max_duration === undefined ? undefined : event.record_max_duration * 60,
  };
}

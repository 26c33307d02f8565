import { describe, expect, it } from 'vitest';
import { parseRequest, roomOf, toRecordJob, type RecordRequest } from '../../functions/scf-record/event';
import { unwrapEvent } from '../../functions/scf-record/http-event';
import { ValidationError } from '../../shared/errors';

const record = {
  SdkAppId: 1400000001,
  RoomId: 1234,
  UserId: 'recorder_1',
  UserSig: 'eJyrVgrxCdYrSy1SslIy0jNQ0gHzM1NS80oy0zLBwpklqUWpAFJ*V34_',
  CosConfig: { Region: 'ap-guangzhou', Bucket: 'media-1250000000', Path: '/records/' },
};

function issuesOf(body: unknown) {
  try {
    parseRequest(body);
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return (error as ValidationError).issues;
  }
  throw new Error('expected a validation error');
}

describe('SCF record request', () => {
  it('accepts the contract with Mode 00 by default', () => {
    const parsed = parseRequest(record);
    expect(parsed).toMatchObject({ action: 'record', request: { Mode: '00', RoomId: 1234 } });
  });

  it('lets RoomId win over StrRoomId', () => {
    expect(roomOf({ RoomId: 5, StrRoomId: 'x' })).toEqual({ roomId: 5 });
    expect(roomOf({ StrRoomId: 'x' })).toEqual({ strRoomId: 'x' });
  });

  it('names each bad field', () => {
    const issues = issuesOf({ ...record, RoomId: undefined, UserId: 'bad user!', Mode: '03', CosConfig: { ...record.CosConfig, Bucket: 'nobucket', Path: 'records' } });
    expect(issues.map((i) => i.field).sort()).toEqual(['CosConfig.Bucket', 'CosConfig.Path', 'Mode', 'RoomId', 'UserId']);
  });

  it('wants SecretId and SecretKey together, and never echoes them', () => {
    const issues = issuesOf({ ...record, CosConfig: { ...record.CosConfig, SecretKey: 'TOP-SECRET-KEY' } });
    expect(issues).toEqual([{ field: 'CosConfig.SecretId', message: expect.stringContaining('both or neither') }]);
    expect(JSON.stringify(issuesOf({ ...record, UserSig: 42, CosConfig: { ...record.CosConfig, SecretId: 1, SecretKey: 'TOP-SECRET-KEY' } }))).not.toContain('TOP-SECRET');
  });

  it('refuses unknown fields, metadata callbacks and unknown actions', () => {
    expect(issuesOf({ ...record, Extra: 1 })[0]!.field).toBe('Extra');
    expect(issuesOf({ ...record, Callback: 'http://169.254.169.254/' })[0]!.field).toBe('Callback');
    expect(issuesOf({ ...record, Action: 'Delete' })[0]!.field).toBe('Action');
  });

  it('takes OutputFormat, defaulting to MP3 for Mode 00 and MP4 for video, and refuses MP3 with video', () => {
    const job = (body: Record<string, unknown>) => toRecordJob((parseRequest({ ...record, ...body }) as { request: RecordRequest }).request, 'r');
    expect(job({}).outputFormat).toBe('mp3');
    expect(job({ Mode: '02' }).outputFormat).toBe('mp4');
    expect(job({ Mode: '01', OutputFormat: 'hls' }).outputFormat).toBe('hls');
    expect(job({ OutputFormat: 'hls+mp4' }).outputFormat).toBe('hls+mp4');
    expect(issuesOf({ ...record, Mode: '02', OutputFormat: 'mp3' })).toEqual([{ field: 'OutputFormat', message: expect.stringContaining('Mode "00"') }]);
    expect(issuesOf({ ...record, OutputFormat: 'flv' })).toEqual([{ field: 'OutputFormat', message: expect.stringContaining('"hls"') }]);
  });

  it('parses the Stop action', () => {
    expect(parseRequest({ Action: 'Stop', SdkAppId: 1, StrRoomId: 'class-7', UserId: 'recorder_1' })).toMatchObject({ action: 'stop' });
    expect(issuesOf({ Action: 'Stop', SdkAppId: 1, UserId: 'r' }).map((i) => i.field)).toEqual(['RoomId']);
  });
});

describe('SCF event shapes', () => {
  const body = JSON.stringify(record);

  it('unwraps an API gateway event, plain or base64', () => {
    expect(unwrapEvent({ httpMethod: 'POST', headers: {}, body, isBase64Encoded: false })).toEqual({ body: record, viaHttp: true });
    expect(unwrapEvent({ httpMethod: 'POST', headers: {}, body: Buffer.from(body).toString('base64'), isBase64Encoded: true })).toEqual({ body: record, viaHttp: true });
  });

  it('unwraps a function-URL event', () => {
    expect(unwrapEvent({ requestContext: { http: { method: 'POST' } }, headers: {}, body, isBase64Encoded: false })).toEqual({ body: record, viaHttp: true });
  });

  it('passes a console test event through', () => {
    expect(unwrapEvent(record)).toEqual({ body: record, viaHttp: false });
    expect(unwrapEvent(Buffer.from(body))).toEqual({ body: record, viaHttp: false });
  });

  it('refuses a GET and an empty or broken body', () => {
    expect(() => unwrapEvent({ httpMethod: 'GET', headers: {}, body: '' })).toThrow(ValidationError);
    expect(() => unwrapEvent({ httpMethod: 'POST', headers: {}, body: '' })).toThrow(ValidationError);
    expect(() => unwrapEvent({ httpMethod: 'POST', headers: {}, body: '{"a":' })).toThrow(ValidationError);
  });
});

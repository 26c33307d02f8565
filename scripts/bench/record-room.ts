/**
 * One side of `npm run bench:record`'s room comparison, in its own process so its CPU and its
 * children's (encoders, the room process and its ffmpegs) are read without the other side's:
 *   record-room.ts sim|sidecar-sim '<scenario json>' <bucket-dir>
 * Records the scenario with the real handler into the local store; prints one JSON line: this
 * process's own CPU seconds and the files.
 */
import { createRecordHandler } from '../../functions/scf-record';
import type { RecordResult } from '../../shared/recording/record-job';
import { localRecordDependencies } from '../lib/scf-local';

async function main(): Promise<void> {
  const [room, scenario, bucketRoot] = process.argv.slice(2) as [string, string, string];
  const handler = createRecordHandler({ ...localRecordDependencies({ room: `${room}:${scenario}`, localBucketRoot: bucketRoot }), env: { ...process.env, LOG_LEVEL: 'error' } });
  const request = {
    SdkAppId: 1400000001,
    RoomId: 9,
    UserId: 'bench',
    UserSig: 'bench',
    Mode: '02',
    CosConfig: { Region: 'ap-guangzhou', Bucket: 'bench-1250000000', Path: '/', SecretId: 'bench', SecretKey: 'bench' },
  };
  const result = (await handler(request, { request_id: `bench-${room}` })) as RecordResult;
  const usage = process.cpuUsage();
  process.stdout.write(`${JSON.stringify({ nodeCpu: (usage.user + usage.system) / 1e6, files: result.Files, error: result.Error })}\n`);
}

void main();

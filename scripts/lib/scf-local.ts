import { readFileSync } from 'node:fs';
import type { RecordHandlerDependencies } from '../../functions/scf-record';
import { createRoomSimulator, parseRoomScenario } from '../../shared/recording/room-simulator';
import { createLocalStore } from '../../shared/storage/local';

/**
 * What `--room sim:@scenario.json` (or `sim:{...}`) and `--local-bucket-root DIR` mean for
 * the local runners: a simulated room per request, and files instead of COS.
 */
export function localRecordDependencies(options: { room?: string; localBucketRoot?: string }): RecordHandlerDependencies {
  const deps: RecordHandlerDependencies = { terminationSignals: ['SIGTERM', 'SIGINT'] };
  if (options.room !== undefined) {
    if (!options.room.startsWith('sim:')) throw new Error("--room must be sim:@scenario.json or sim:'{json}'");
    const spec = options.room.slice('sim:'.length);
    const scenario = parseRoomScenario(JSON.parse(spec.startsWith('@') ? readFileSync(spec.slice(1), 'utf8') : spec));
    deps.createRoom = () => createRoomSimulator(scenario);
  }
  const root = options.localBucketRoot;
  if (root !== undefined) deps.createStore = (request) => createLocalStore({ root, bucket: request.CosConfig.Bucket });
  return deps;
}

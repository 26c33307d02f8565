import type { RecordHandlerDependencies } from '../../functions/scf-record';
import { ValidationError } from '../../shared/errors';
import { createRoomSimulator, parseRoomScenario, type RoomScenario } from '../../shared/sources/room-simulator';
import { createLocalStore } from '../../shared/storage/local';
import { readArgumentFile, UsageError } from './cli';

/**
 * What `--room sim:@scenario.json` (or `sim:{...}`) and `--local-bucket-root DIR` mean for
 * the local runners: a simulated room per request, and files instead of COS. A wrong --room is a
 * UsageError saying what to type.
 */
export function localRecordDependencies(options: { room?: string; localBucketRoot?: string }): RecordHandlerDependencies {
  const deps: RecordHandlerDependencies = { terminationSignals: ['SIGTERM', 'SIGINT'] };
  if (options.room !== undefined) {
    const scenario = parseRoomArgument(options.room);
    deps.createRoom = () => createRoomSimulator(scenario);
  }
  const root = options.localBucketRoot;
  if (root !== undefined) deps.createStore = (target) => createLocalStore({ root, bucket: target.bucket });
  return deps;
}

/** `sim:@scenario.json` or `sim:{"anchors":[…]}` → the validated scenario. */
export function parseRoomArgument(room: string): RoomScenario {
  if (!room.startsWith('sim:')) {
    throw new UsageError(`--room ${room}: the only local room is the simulator, --room sim:@scenario.json or --room sim:'{json}' (leave --room out for trtc-electron-sdk)`);
  }
  const spec = room.slice('sim:'.length);
  let text = spec;
  let source = `--room ${room}`;
  if (spec.startsWith('@')) {
    const path = spec.slice(1);
    if (path === '') throw new UsageError('--room sim:@: put the scenario file name right after @, e.g. --room sim:@scenario.json');
    text = readArgumentFile(source, path);
  } else if (!/^\s*[{[]/.test(spec)) {
    // `sim:scenario.json`: a file name without its @ would otherwise fail as "Unexpected token s".
    throw new UsageError(`--room sim:${spec} is neither JSON nor a file reference: use --room sim:@${spec}`);
  } else {
    source = '--room sim:<json>';
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${source} is not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  try {
    return parseRoomScenario(json);
  } catch (error) {
    if (error instanceof ValidationError) throw new UsageError(`${source}: not a room scenario: ${error.message}`);
    throw error;
  }
}

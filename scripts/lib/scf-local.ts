import { liteavPython, type RecordHandlerDependencies } from '../../functions/scf-record';
import { readConfig, type Env, type RuntimeConfig } from '../../shared/config';
import { ValidationError } from '../../shared/errors';
import { RECORDING_AUDIO } from '../../shared/outputs/recording/encoder-args';
import { createLiteavRoom, type LiteavRoom } from '../../shared/sources/liteav/liteav-room';
import { createRoomSimulator, parseRoomScenario, simulationPlan, type RoomScenario, type RoomSimulator } from '../../shared/sources/room-simulator';
import type { RoomContext, RoomListener, RoomSource } from '../../shared/sources/room-source';
import { createLocalStore } from '../../shared/storage/local';
import { watchRoomEvents } from '../../test/emulators/trtc-api-emulator';
import { readArgumentFile, UsageError } from './cli';

const SIDECAR_SIM = 'sidecar-sim:';

/** The options of the local recorder runners (scf:invoke, scf:serve, scf:image) that localRecordDependencies reads. */
export const LOCAL_RECORD_OPTIONS = {
  room: {
    type: 'string',
    placeholder: 'sim:@FILE',
    description:
      "the simulated room for each Record: sim:@scenario.json or sim:'{json}'; sidecar-sim:@scenario.json plays it inside the liteav room process (default: the production room, TRTC_ROOM_SDK)",
  },
  'local-bucket-root': { type: 'string', placeholder: 'DIR', description: 'store recordings as files under DIR/<bucket>/ instead of COS' },
} as const;

/**
 * What `--room sim:@scenario.json` (or `sim:{...}`) and `--local-bucket-root DIR` mean for
 * the local runners: a simulated room per request, and files instead of COS. A wrong --room is a
 * UsageError saying what to type. `sidecar-sim:` plays the same scenario inside the liteav room
 * process, through its delegate and the pipes to Node, as the production room would deliver it.
 * With TRTC_API_ENDPOINT at the TRTC API emulator (`npm run emulators`), a Stop's RemoveUser of
 * the recorder kicks a `sim:` room.
 */
export function localRecordDependencies(options: { room?: string; localBucketRoot?: string }, env: Env = process.env): RecordHandlerDependencies {
  const deps: RecordHandlerDependencies = { terminationSignals: ['SIGTERM', 'SIGINT'] };
  if (options.room !== undefined) {
    const scenario = parseRoomArgument(options.room);
    const config = readConfig(env);
    const trtcApi = config.trtcApiEndpoint;
    if (options.room.startsWith(SIDECAR_SIM)) deps.createRoom = sidecarSimRoom(scenario, config);
    // Only the emulator speaks plain HTTP; a real API endpoint has no kicks to tell.
    else deps.createRoom = () => (trtcApi?.startsWith('http://') ? kickedThroughEmulator(createRoomSimulator(scenario), trtcApi) : createRoomSimulator(scenario));
  }
  const root = options.localBucketRoot;
  if (root !== undefined) deps.createStore = (target) => createLocalStore({ root, bucket: target.bucket });
  return deps;
}

/** The scenario played by the liteav room process (its simulated room), through the pipes the production room uses. */
export function sidecarSimRoom(scenario: RoomScenario, config: RuntimeConfig = readConfig(process.env)): (context: RoomContext) => LiteavRoom {
  const simulation = simulationPlan(scenario, { ffmpegPath: config.ffmpegPath });
  return (context) => createLiteavRoom({ python: liteavPython(config), ...context, audio: RECORDING_AUDIO, simulation });
}

/** `sim:@scenario.json`, `sim:{"anchors":[…]}` (or the same after `sidecar-sim:`) → the validated scenario. */
export function parseRoomArgument(room: string): RoomScenario {
  const kind = [SIDECAR_SIM, 'sim:'].find((prefix) => room.startsWith(prefix));
  if (!kind) {
    throw new UsageError(
      `--room ${room}: the local rooms are the simulator, --room sim:@scenario.json or --room sim:'{json}', and the same played by the liteav room process, --room sidecar-sim:@scenario.json (leave --room out for the production room, TRTC_ROOM_SDK)`,
    );
  }
  const spec = room.slice(kind.length);
  let text = spec;
  let source = `--room ${room}`;
  if (spec.startsWith('@')) {
    const path = spec.slice(1);
    if (path === '') throw new UsageError(`--room ${kind}@: put the scenario file name right after @, e.g. --room ${kind}@scenario.json`);
    text = readArgumentFile(source, path);
  } else if (!/^\s*[{[]/.test(spec)) {
    // `sim:scenario.json`: a file name without its @ would otherwise fail as "Unexpected token s".
    throw new UsageError(`--room ${kind}${spec} is neither JSON nor a file reference: use --room ${kind}@${spec}`);
  } else {
    source = `--room ${kind}<json>`;
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

/**
 * The simulated room, kicked when the TRTC API emulator at `endpoint` accepts a RemoveUser of its
 * recorder: what TRTC's servers do to the SDK's room. So a Stop sent through this process, another
 * one or curl ends the recording it names, with StopReason `kicked`.
 */
export function kickedThroughEmulator(room: RoomSimulator, endpoint: string, warn = (line: string) => void process.stderr.write(`${line}\n`)): RoomSource {
  let watch: { close(): void } | undefined;
  let out = false;
  return {
    async enter(target, listener, subscription) {
      const watched: RoomListener = {
        ...listener,
        exited: (reason) => {
          out = true;
          watch?.close();
          listener.exited(reason);
        },
      };
      await room.enter(target, watched, subscription);
      if (out) return;
      const { sdkAppId, userId, roomId, strRoomId } = target;
      watch = watchRoomEvents(endpoint, { sdkAppId, userId, ...(roomId !== undefined ? { roomId } : { strRoomId }) }, {
        kicked: () => room.kick(),
        problem: (message) => warn(`room simulator: a Stop will not reach this room: ${message}`),
      });
    },
    leave: () => room.leave(),
  };
}

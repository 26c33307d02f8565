"""
The TRTC room process: one recording's room, owned by Tencent's Linux server SDK (`liteav`), or, for
`--room sidecar-sim:`, by a scripted room behind the same delegate. Node spawns and supervises it
(shared/sources/liteav/liteav-room.ts); they talk over pipes:

  fd 0  Node -> here: control, JSON lines (enter, leave, kick). EOF means Node is gone: leave, exit.
  fd 3  here -> Node: events, JSON lines.
  fd 4  here -> Node: audio frames, binary (FRAME_HEADER, the user id, then the payload).
  fd 5  here -> Node: video frames, apart from audio, which never waits behind a picture. Once Node
        has opened the video ring (VideoRing, shared memory it reads with one pread a picture),
        only the header goes down the pipe, naming where in the ring the picture is; Node says
        when it has read it (`read` on fd 0), which frees the space.
  fd 2  this process's own diagnostics (Node keeps the last lines). The SDK's console log goes to a
        pipe read here (the last lines name its errors); its log files go to the work dir.

The SDK calls the delegate on its own threads: every callback copies what it needs, queues it and
returns. None blocks or raises (an exception escaping a pybind11 callback ends the process).

Back-pressure: when Node reads pictures slower than they come, queued video is dropped, oldest
first, and counted (the count rides on the user's next picture to Node); audio has its own pipe and
is never dropped for video. Memory is bounded: VIDEO_QUEUE_BYTES, and AUDIO_QUEUE_MS per user.
"""

import collections
import json
import os
import queue
import re
import signal
import struct
import subprocess
import sys
import threading
import time

# Payload length u32, kind u8, user id length u8, width | channels u16, height | sample rate u32,
# frames dropped before this one u32, arrival ms f64 (this process's monotonic clock from
# entering: one clock for audio and video), SDK pts ms f64, offset in the video ring f64 (-1: the
# payload follows the user id in the pipe). Little-endian, 40 bytes. Must match protocol.ts.
FRAME_HEADER = struct.Struct('<IBBHIIddd')
INLINE = -1.0
KIND_AUDIO = 1
KIND_VIDEO = 2
EVENTS_FD = 3
AUDIO_FD = 4
VIDEO_FD = 5

# The SDK's values (checked against liteav when it is loaded).
STREAM_TYPE_AUDIO = 1
STREAM_TYPE_VIDEO_HIGH = 2
ERR_BANNED_BY_SERVER = -205
SDK_ERROR_NAMES = {
    -1: 'ERR_FAILED', -2: 'ERR_INVALID_PARAMETER', -3: 'ERR_INVALID_OPERATION', -4: 'ERR_NOT_SUPPORTED',
    -5: 'ERR_INVALID_LICENSE', -6: 'ERR_REQUEST_SERVER_TIMEOUT', -7: 'ERR_SERVER_PROCESS_FAILED',
    -102: 'ERR_READ_TRY_AGAIN', -103: 'ERR_NETWORK_UNREACHABLE', -205: 'ERR_BANNED_BY_SERVER',
    -3301: 'ERR_ENTER_ROOM_FAILED', -3317: 'ERR_INVALID_SDK_APP_ID', -3318: 'ERR_INVALID_ROOM_ID',
    -3319: 'ERR_INVALID_USER_ID', -3320: 'ERR_INVALID_USER_SIG', -100013: 'ERR_SERVICE_SUSPENDED',
}
CONNECTION_STATES = {0: 'init', 1: 'disconnected', 2: 'connecting', 3: 'connected'}

VIDEO_QUEUE_BYTES = 24 * 1024 * 1024
# Shared memory for pictures on their way to Node: pages are touched only as far as the ring is
# ever filled (it restarts at 0 whenever Node has read everything), so a small room stays small.
VIDEO_RING_BYTES = 32 * 1024 * 1024
VIDEO_QUEUE_FRAMES_PER_USER = 2
AUDIO_QUEUE_MS = 10_000
# How long leaving may wait for the SDK's OnExitRoom; the process is gone this long after it starts leaving.
EXIT_WAIT_S = 2.0
EXIT_DEADLINE_S = 4.0
CONSOLE_TAIL_LINES = 40
CONSOLE_WAIT_S = 0.5
# "OnEnterRoom , code: [-3307]Request timeout., cost_time: 21314ms" in the SDK's console log.
CONSOLE_ENTER_RESULT = re.compile(r'OnEnterRoom , code: \[(-?\d+)\]([^,]*)')

diag = sys.stderr


def say(message):
    """A diagnostic line for Node's stderr tail. Never the UserSig: nothing here ever prints the enter command."""
    try:
        diag.write('room process: %s\n' % message)
        diag.flush()
    except Exception:
        pass


def never_raises(callback):
    """SDK callbacks run on the SDK's threads, where an escaping exception would end the process."""
    def guarded(*args):
        try:
            callback(*args)
        except BaseException as error:  # noqa: BLE001 - nothing may escape into the SDK
            say('%s failed: %r' % (callback.__name__, error))
    guarded.__name__ = callback.__name__
    return guarded


def write_all(fd, parts):
    """writev until everything is written (a pipe or socket may take part of it)."""
    views = [memoryview(part).cast('B') for part in parts]
    while views:
        written = os.writev(fd, views)
        while written and views:
            if written >= len(views[0]):
                written -= len(views[0])
                views.pop(0)
            else:
                views[0] = views[0][written:]
                written = 0


class EventChannel:
    """JSON lines to Node on their own thread, so a callback never waits for the pipe."""

    def __init__(self, fd, on_broken):
        self.fd = fd
        self.on_broken = on_broken
        self.queue = collections.deque()
        self.ready = threading.Condition()
        self.closed = False
        threading.Thread(target=self.run, name='events', daemon=True).start()

    def send(self, event, **fields):
        fields['event'] = event
        line = (json.dumps(fields, separators=(',', ':')) + '\n').encode()
        with self.ready:
            if not self.closed:
                self.queue.append(line)
                self.ready.notify()

    def close(self, timeout):
        """Stops taking events; waits up to `timeout` for the queued ones to be written."""
        deadline = time.monotonic() + timeout
        with self.ready:
            self.closed = True
            self.ready.notify()
            while self.queue and time.monotonic() < deadline:
                self.ready.wait(0.05)

    def run(self):
        while True:
            with self.ready:
                while not self.queue and not self.closed:
                    self.ready.wait()
                if not self.queue:
                    return
                line = self.queue[0]
            try:
                write_all(self.fd, [line])
            except OSError:
                self.on_broken()
                return
            with self.ready:
                self.queue.popleft()
                self.ready.notify_all()


class FrameChannel:
    """
    Frames of one kind to Node on their own pipe and thread, from a bounded queue. Audio and video
    have a pipe each, so audio never waits behind a picture that Node is slow to read.
    """

    def __init__(self, fd, kind, on_broken):
        self.fd = fd
        self.kind = kind
        self.on_broken = on_broken
        self.lock = threading.Lock()
        # One token a frame queued: the writer sleeps in a C-level get(), not a Python Condition.
        self.tokens = queue.SimpleQueue()
        self.queue = collections.deque()
        self.closed = False
        threading.Thread(target=self.run, name='media-%d' % kind, daemon=True).start()

    def put(self, frame):
        """Queues (user_id, data, first, second, pts_ms, arrival_ms, size); returns what had to be dropped for it."""
        with self.lock:
            if self.closed:
                return []
            dropped = self.make_room(frame)
            self.queue.append(frame)
            self.queued(frame, +1)
        self.tokens.put(None)
        return dropped

    def close(self):
        with self.lock:
            self.closed = True
            self.queue.clear()
        self.tokens.put(None)

    def drop_oldest(self, user_id):
        """Drops the oldest queued frame of `user_id` (None: of anyone); returns it, or None."""
        for index, frame in enumerate(self.queue):
            if user_id is None or frame[0] == user_id:
                del self.queue[index]
                self.queued(frame, -1)
                return frame
        return None

    def run(self):
        while True:
            self.tokens.get()
            with self.lock:
                if self.closed:
                    return
                if not self.queue:
                    continue  # its frame was dropped
                frame = self.queue.popleft()
                self.queued(frame, -1)
                dropped = self.taken(frame)
            try:
                if not self.send(frame, dropped):
                    return
            except OSError:
                self.on_broken()
                return

    def send(self, frame, dropped, ring_offset=INLINE):
        user_id, data, first, second, pts_ms, arrival_ms, _ = frame
        user = user_id.encode()
        header = FRAME_HEADER.pack(len(data), self.kind, len(user), first, second, dropped, arrival_ms, float(pts_ms), ring_offset)
        write_all(self.fd, [header, user] if ring_offset >= 0 else [header, user, data])
        return True

    # Per kind: what a full queue drops, the queue's accounting, the count sent with a frame.
    def make_room(self, frame):
        raise NotImplementedError

    def queued(self, frame, sign):
        raise NotImplementedError

    def taken(self, frame):
        return 0


class AudioChannel(FrameChannel):
    """Never dropped for video; only a Node that stopped reading for AUDIO_QUEUE_MS loses its oldest audio."""

    def __init__(self, fd, on_broken):
        self.queued_ms = collections.Counter()
        FrameChannel.__init__(self, fd, KIND_AUDIO, on_broken)

    def make_room(self, frame):
        dropped = []
        while self.queued_ms[frame[0]] + frame[6] > AUDIO_QUEUE_MS:
            oldest = self.drop_oldest(frame[0])
            if oldest is None:
                break
            dropped.append(oldest)
        return dropped

    def queued(self, frame, sign):
        self.queued_ms[frame[0]] += sign * frame[6]


class VideoChannel(FrameChannel):
    """When Node falls behind, the oldest queued picture of that user (past the byte budget, of anyone) is dropped and counted."""

    def __init__(self, fd, on_broken):
        self.queued_frames = collections.Counter()
        self.queued_bytes = 0
        self.dropped = collections.Counter()
        self.users = set()
        FrameChannel.__init__(self, fd, KIND_VIDEO, on_broken)

    def make_room(self, frame):
        dropped = []
        if self.queued_frames[frame[0]] >= VIDEO_QUEUE_FRAMES_PER_USER:
            dropped.append(self.drop_oldest(frame[0]))
        while self.queue and self.queued_bytes + frame[6] > VIDEO_QUEUE_BYTES:
            dropped.append(self.drop_oldest(None))
        for oldest in dropped:
            self.dropped[oldest[0]] += 1
        return dropped

    def queued(self, frame, sign):
        self.queued_frames[frame[0]] += sign
        self.queued_bytes += sign * frame[6]

    def taken(self, frame):
        return self.dropped.pop(frame[0], 0)

    def use_ring(self, ring):
        """From now on pictures go through `ring` (Node has opened it); the pipe carries their headers."""
        self.ring = ring

    def send(self, frame, dropped):
        ring = getattr(self, 'ring', None)
        if ring is None:
            return FrameChannel.send(self, frame, dropped)
        data = frame[1]
        self.users.add(frame[0])
        # Waits while Node has not read enough (meanwhile new pictures queue, and the oldest are
        # dropped): at most VIDEO_QUEUE_FRAMES_PER_USER unread per anchor, so none arrives late.
        offset = ring.place(len(data), VIDEO_QUEUE_FRAMES_PER_USER * len(self.users))
        if offset is None:
            return False
        ring.view[offset:offset + len(data)] = data
        return FrameChannel.send(self, frame, dropped, float(offset))

    def close(self):
        FrameChannel.close(self)
        ring = getattr(self, 'ring', None)
        if ring is not None:
            ring.close()


class VideoRing:
    """
    A memfd Node opens through /proc/<pid>/fd/<fd> and reads with pread: one copy into Node's
    buffer, no pipe chunks. Pictures take contiguous space in the order they are sent; Node reads
    them in that order, and each `read` it reports frees the oldest.
    """

    def __init__(self, size=VIDEO_RING_BYTES):
        import mmap  # noqa: PLC0415
        self.fd = os.memfd_create('liteav-video-ring', os.MFD_CLOEXEC)
        os.ftruncate(self.fd, size)
        self.size = size
        self.view = memoryview(mmap.mmap(self.fd, size))
        self.path = '/proc/%d/fd/%d' % (os.getpid(), self.fd)
        self.used = collections.deque()  # (offset, length), oldest first
        self.head = 0
        self.ready = threading.Condition()
        self.closed = False

    def place(self, length, max_unread):
        """Where a picture of `length` bytes goes, once there is room and fewer than `max_unread` wait; None when closed."""
        if length > self.size:
            raise ValueError('a %d-byte picture is larger than the video ring' % length)
        with self.ready:
            while not self.closed:
                offset = self._fit(length) if len(self.used) < max_unread else None
                if offset is not None:
                    self.used.append((offset, length))
                    self.head = offset + length
                    return offset
                self.ready.wait()
            return None

    def _fit(self, length):
        if not self.used:
            return 0
        tail = self.used[0][0]
        wrapped = self.used[-1][0] < tail
        if not wrapped:
            if self.size - self.head >= length:
                return self.head
            return 0 if tail >= length else None
        return self.head if tail - self.head >= length else None

    def release(self, frames):
        with self.ready:
            for _ in range(min(frames, len(self.used))):
                self.used.popleft()
            self.ready.notify_all()

    def close(self):
        with self.ready:
            self.closed = True
            self.ready.notify_all()


class MediaChannels:
    """The audio and video pipes to Node."""

    def __init__(self, audio_fd, video_fd, on_broken, on_audio_dropped):
        self.audio = AudioChannel(audio_fd, on_broken)
        self.video = VideoChannel(video_fd, on_broken)
        self.on_audio_dropped = on_audio_dropped

    def audio_frame(self, user_id, data, sample_rate, channels, pts_ms, arrival_ms):
        if not data or sample_rate <= 0 or channels <= 0:
            return
        frame_ms = len(data) * 1000.0 / (sample_rate * channels * 2)
        dropped = self.audio.put((user_id, data, channels, sample_rate, pts_ms, arrival_ms, frame_ms))
        if dropped:
            self.on_audio_dropped(user_id, sum(frame[6] for frame in dropped))

    def video_frame(self, user_id, data, width, height, pts_ms, arrival_ms):
        if data and width > 0 and height > 0:
            self.video.put((user_id, data, width, height, pts_ms, arrival_ms, len(data)))

    def close(self):
        self.audio.close()
        self.video.close()


class ConsoleTail:
    """The SDK prints its log to stdout/stderr: that goes to a pipe read here, keeping the last lines."""

    def __init__(self):
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 1)
        os.dup2(write_fd, 2)
        os.close(write_fd)
        self.lines = collections.deque(maxlen=CONSOLE_TAIL_LINES)
        self.enter_result = None
        threading.Thread(target=self.run, args=(read_fd,), name='sdk-console', daemon=True).start()

    def run(self, read_fd):
        with os.fdopen(read_fd, 'rb') as console:
            for raw in console:
                line = raw.decode('utf-8', 'replace').rstrip()
                self.lines.append(line)
                match = CONSOLE_ENTER_RESULT.search(line)
                if match:
                    self.enter_result = (int(match.group(1)), match.group(2).strip().rstrip('.'))


class SdkCloud:
    """liteav's TRTCCloud, for the Room below."""

    name = 'liteav'

    def __init__(self, delegate, log_dir):
        import liteav  # noqa: PLC0415 - loaded only for a real room
        self.liteav = liteav
        for ours, theirs in ((STREAM_TYPE_AUDIO, liteav.STREAM_TYPE_AUDIO), (STREAM_TYPE_VIDEO_HIGH, liteav.STREAM_TYPE_VIDEO_HIGH), (ERR_BANNED_BY_SERVER, liteav.ERR_BANNED_BY_SERVER)):
            if ours != int(theirs):
                raise RuntimeError('this liteav numbers its constants differently (%d != %d): check room_process.py against it' % (ours, int(theirs)))
        self.version = _installed_version('liteav')
        if log_dir:
            os.makedirs(log_dir, exist_ok=True)
            liteav.TXLiveSDK.SetLogPath(log_dir)
        liteav.TXLiveSDK.DisableConsoleLog()
        self.cloud = liteav.CreateTRTCCloud(delegate)
        self.streams = {'audio': liteav.STREAM_TYPE_AUDIO, 'video': liteav.STREAM_TYPE_VIDEO_HIGH}

    def enter(self, room, audio):
        liteav = self.liteav
        params = liteav.EnterRoomParams()
        params.room.sdk_app_id = int(room['sdkAppId'])
        if room.get('roomId'):
            params.room.room_id = int(room['roomId'])
        else:
            params.room.room_id = 0
            params.room.str_room_id = liteav.TrtcString(room['strRoomId'])
        params.room.user_id = liteav.TrtcString(room['userId'])
        params.room.user_sig = liteav.TrtcString(room['userSig'])
        params.role = liteav.TRTC_ROLE_AUDIENCE
        params.scene = liteav.TRTC_SCENE_RECORD
        params.use_pixel_frame_output = True
        obtain = params.audio_obtain_params
        obtain.audio_obtain_method = liteav.AUDIO_OBTAIN_METHOD_CALLBACK
        obtain.enable_remote_audio_mix = False
        obtain.output_sample_rate = int(audio['sampleRate'])
        obtain.output_channels = int(audio['channels'])
        obtain.output_frame_length_ms = 20
        obtain.output_audio_codec_type = liteav.AUDIO_CODEC_TYPE_PCM
        return self.cloud.EnterRoom(params)

    def exit(self):
        return self.cloud.ExitRoom()

    def unsubscribe(self, user_id, kind):
        return self.cloud.Unsubscribe(user_id, self.streams[kind])


def _installed_version(distribution):
    try:
        import importlib.metadata as metadata  # noqa: PLC0415
        return metadata.version(distribution)
    except Exception:  # noqa: BLE001
        return 'unknown'


class Room:
    """
    One recording's stay in one room, whatever the cloud (the SDK or the simulation): maps the
    delegate's callbacks to events and frames for Node.
    """

    def __init__(self, events, media, console):
        self.events = events
        self.media = media
        self.console = console
        self.cloud = None
        self.state = 'idle'  # idle, entering, in, leaving, out
        self.lock = threading.Lock()
        self.entered_at = time.monotonic()
        self.enter_started = time.monotonic()
        self.allow = None
        self.deny = set()
        self.kicked = False
        self.exited = threading.Event()
        self.clock_reported = set()
        # SDK calls made because of a callback run here, never inside the SDK's own thread.
        self.calls = collections.deque()
        self.calls_ready = threading.Condition()
        threading.Thread(target=self.run_calls, name='sdk-calls', daemon=True).start()

    # --- commands from Node (main thread) ---

    def enter(self, command):
        subscription = command.get('subscription') or {}
        self.allow = set(subscription['allow']) if subscription.get('allow') is not None else None
        self.deny = set(subscription.get('deny') or [])
        with self.lock:
            self.state = 'entering'
            self.enter_started = self.entered_at = time.monotonic()
        for user_id in self.deny:
            self.unsubscribe(user_id)
        result = self.cloud.enter(command['room'], command['audio'])
        if result != 0:
            self.enter_failed(int(result), 'EnterRoom refused its parameters')

    def leave(self):
        with self.lock:
            if self.state not in ('entering', 'in'):
                return
            self.state = 'leaving'
        self.call(self.cloud.exit)

    def wait_out(self, timeout):
        return self.exited.wait(timeout)

    # --- the delegate's callbacks, on the SDK's threads ---

    def on_enter(self):
        with self.lock:
            if self.state != 'entering':
                return
            self.state = 'in'
            self.entered_at = time.monotonic()
        self.events.send('entered', afterMs=round((self.entered_at - self.enter_started) * 1000))

    def on_exit(self):
        with self.lock:
            state = self.state
        if state == 'leaving':
            self.finish('left')
        elif state == 'in':
            # Out without asking: a kick (RemoveUser) comes as ERR_BANNED_BY_SERVER first; the
            # delegate has no reason code, so anything else the server ended is taken as dismissed.
            self.finish('kicked' if self.kicked else 'dismissed')
        elif state == 'entering':
            self.enter_failed(None, 'the SDK left the room before entering it')
        else:
            self.exited.set()

    def on_error(self, code):
        code = int(code)
        with self.lock:
            state = self.state
        if state == 'entering':
            self.enter_failed(code, None)
        elif code == ERR_BANNED_BY_SERVER and state == 'in':
            self.kicked = True
            self.finish('kicked')
            self.call(self.cloud.exit)
        else:
            self.events.send('error', code=code, message='%s from the TRTC SDK' % SDK_ERROR_NAMES.get(code, 'error %d' % code))

    def on_connection(self, old_state, new_state):
        name = CONNECTION_STATES.get(int(new_state), str(int(new_state)))
        self.events.send('connection', state=name)

    def on_user_enter(self, user_id):
        self.events.send('anchor-joined', userId=user_id)
        if not self.wanted(user_id):
            self.call(lambda: self.unsubscribe(user_id))

    def on_user_exit(self, user_id, reason):
        self.events.send('anchor-left', userId=user_id, reason=int(reason))

    def on_available(self, kind, user_id, available):
        self.events.send('%s-available' % kind, userId=user_id, available=bool(available))

    def on_audio(self, user_id, frame):
        if self.state != 'in' or not self.wanted(user_id):
            return
        arrival = (time.monotonic() - self.entered_at) * 1000
        pts = frame.pts
        self.report_clock(user_id, 'audio', pts, arrival)
        self.media.audio_frame(user_id, frame.data, frame.sample_rate, frame.channels, pts, arrival)

    def on_video(self, user_id, stream_type, frame):
        # The main camera stream only, as the recorder records it.
        if int(stream_type) != STREAM_TYPE_VIDEO_HIGH or self.state != 'in' or not self.wanted(user_id):
            return
        arrival = (time.monotonic() - self.entered_at) * 1000
        pts = frame.pts
        self.report_clock(user_id, 'video', pts, arrival)
        self.media.video_frame(user_id, frame.data, frame.width, frame.height, pts, arrival)

    # --- helpers ---

    def wanted(self, user_id):
        return (user_id in self.allow) if self.allow is not None else user_id not in self.deny

    def unsubscribe(self, user_id):
        for kind in ('audio', 'video'):
            result = self.cloud.unsubscribe(user_id, kind)
            if result != 0:
                say('Unsubscribe(%s, %s) returned %s' % (user_id, kind, result))

    def report_clock(self, user_id, kind, pts, arrival):
        """The first frame of each user and kind: its pts against the arrival clock (do the SDK's audio and video pts share one clock?)."""
        if (user_id, kind) in self.clock_reported:
            return
        self.clock_reported.add((user_id, kind))
        self.events.send('clock', userId=user_id, kind=kind, ptsMs=pts, arrivalMs=round(arrival, 1))

    def enter_failed(self, code, message):
        with self.lock:
            if self.state != 'entering':
                return
            self.state = 'out'
        fields = {'code': code, 'afterMs': round((time.monotonic() - self.enter_started) * 1000)}
        if code is not None:
            fields['name'] = SDK_ERROR_NAMES.get(code, 'error %d' % code)
        if message:
            fields['message'] = message

        def report():
            # The SDK logs its own code for the failure just after calling OnError: wait for that line a moment.
            deadline = time.monotonic() + CONSOLE_WAIT_S
            while self.console and self.console.enter_result is None and time.monotonic() < deadline:
                time.sleep(0.02)
            if self.console and self.console.enter_result:
                fields['sdkCode'], fields['sdkMessage'] = self.console.enter_result
            self.events.send('enter-failed', **fields)
            self.cloud.exit()
            self.exited.set()

        self.call(report)

    def finish(self, reason):
        with self.lock:
            if self.state == 'out':
                return
            self.state = 'out'
        self.events.send('exited', reason=reason)
        self.exited.set()

    def call(self, fn):
        with self.calls_ready:
            self.calls.append(fn)
            self.calls_ready.notify()

    def run_calls(self):
        while True:
            with self.calls_ready:
                while not self.calls:
                    self.calls_ready.wait()
                fn = self.calls.popleft()
            try:
                fn()
            except Exception as error:  # noqa: BLE001
                say('SDK call failed: %r' % (error,))


def delegate_for(room, base):
    """The SDK's delegate (every callback must exist: the SDK calls pure virtuals), each guarded."""

    class Delegate(base):
        def __init__(self):
            base.__init__(self)

        @never_raises
        def OnError(self, error):
            room.on_error(error)

        @never_raises
        def OnConnectionStateChanged(self, old_state, new_state):
            room.on_connection(old_state, new_state)

        @never_raises
        def OnEnterRoom(self):
            room.on_enter()

        @never_raises
        def OnExitRoom(self):
            room.on_exit()

        @never_raises
        def OnRemoteUserEnterRoom(self, info):
            room.on_user_enter(info.user_id.GetValue())

        @never_raises
        def OnRemoteUserExitRoom(self, info, reason):
            room.on_user_exit(info.user_id.GetValue(), reason)

        @never_raises
        def OnRemoteAudioAvailable(self, user_id, available):
            room.on_available('audio', user_id, available)

        @never_raises
        def OnRemoteVideoAvailable(self, user_id, available, stream_type):
            if int(stream_type) == STREAM_TYPE_VIDEO_HIGH:
                room.on_available('video', user_id, available)

        @never_raises
        def OnRemoteAudioReceived(self, user_id, frame):
            room.on_audio(user_id, frame)

        @never_raises
        def OnRemotePixelFrameReceived(self, user_id, stream_type, frame):
            room.on_video(user_id, stream_type, frame)

        # Not used by a recorder; defined because the SDK calls every one of them.
        def OnLocalAudioChannelCreated(self):
            pass

        def OnLocalAudioChannelDestroyed(self):
            pass

        def OnLocalVideoChannelCreated(self, stream_type):
            pass

        def OnLocalVideoChannelDestroyed(self, stream_type):
            pass

        def OnRequestChangeVideoEncodeBitrate(self, stream_type, bitrate_bps):
            pass

        def OnRequestKeyFrame(self, stream_type):
            pass

        def OnRemoteVideoFrameReceived(self, user_id, stream_type, frame):
            pass

        def OnRemoteMixedAudioReceived(self, frame):
            pass

        def OnSeiMessageReceived(self, user_id, stream_type, message_type, message):
            pass

        def OnReceiveCustomCmdMsg(self, user_id, cmd_id, seq, message):
            pass

        def OnMissCustomCmdMsg(self, user_id, cmd_id, error_code, missed):
            pass

        def OnNetworkQuality(self, local_quality, remote_qualities):
            pass

    return Delegate()


# --- the simulated room (--room sidecar-sim:) ---------------------------------------------------


class SimFrame:
    __slots__ = ('data', 'width', 'height', 'sample_rate', 'channels', 'pts')

    def __init__(self, data, pts, width=0, height=0, sample_rate=0, channels=0):
        self.data, self.pts, self.width, self.height, self.sample_rate, self.channels = data, pts, width, height, sample_rate, channels


class SimUserInfo:
    """What OnRemoteUserEnterRoom gets: `info.user_id.GetValue()`."""

    def __init__(self, user_id):
        self._user_id = user_id
        self.user_id = self

    def GetValue(self):
        return self._user_id


class SimFeed:
    """One ffmpeg writing raw frames to its stdout, taken off it on the room clock (as room-simulator.ts does)."""

    def __init__(self, cloud, user_id, kind, spec):
        self.cloud, self.user_id, self.kind, self.spec = cloud, user_id, kind, spec
        self.frame_bytes = int(spec['frameBytes'])
        self.period_ms = float(spec['periodMs'])
        self.schedule = None
        self.stopped = False
        self.wake = threading.Condition()
        self.process = subprocess.Popen([cloud.ffmpeg] + list(spec['args']), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            import fcntl  # noqa: PLC0415
            # F_SETPIPE_SZ: a picture in a few reads rather than one per 64 KiB.
            fcntl.fcntl(self.process.stdout.fileno(), 1031, 1 << 20)
        except OSError:
            pass
        threading.Thread(target=self.run, name='feed-%s-%s' % (user_id, kind), daemon=True).start()

    def play(self, start_ms, until_ms):
        with self.wake:
            self.schedule = [start_ms, until_ms, 0]
            self.wake.notify()

    def pause(self):
        with self.wake:
            self.schedule = None
            self.wake.notify()

    def stop(self):
        with self.wake:
            self.stopped = True
            self.schedule = None
            self.wake.notify()
        try:
            self.process.kill()
        except OSError:
            pass

    def run(self):
        while True:
            with self.wake:
                while not self.stopped and self.schedule is None:
                    self.wake.wait()
                if self.stopped:
                    return
                schedule = self.schedule
                due_ms = schedule[0] + schedule[2] * self.period_ms
                if due_ms >= schedule[1]:
                    self.schedule = None
                    continue
            wait_ms = due_ms - self.cloud.now_ms()
            if wait_ms > 0:
                # A plain sleep (cheaper than a timed wait); a pause or stop meanwhile is seen on waking.
                time.sleep(wait_ms / 1000)
                continue
            data = self.process.stdout.read(self.frame_bytes)
            if len(data) < self.frame_bytes:
                code = self.process.wait()  # reaped here, also when stopped
                if not self.stopped:
                    self.cloud.feed_failed(self.user_id, self.kind, code)
                return
            with self.wake:
                if self.schedule is not schedule:
                    continue  # paused or replayed while reading: this frame's time is gone
                schedule[2] += 1
            self.cloud.deliver(self.user_id, self.kind, self.spec, data, round(due_ms))


class SimulatedCloud:
    """
    Plays a scenario prepared by Node (room-simulator.ts's simulationPlan: when each anchor joins,
    mutes and leaves, and the ffmpeg that makes its frames) through the same delegate calls the SDK
    makes. Subscription is the SDK's: everyone by default, Unsubscribe stops a user's frames.
    """

    name = 'simulated'
    version = 'simulated'

    def __init__(self, delegate, plan):
        self.delegate = delegate
        self.plan = plan
        self.ffmpeg = plan['ffmpeg']
        self.started_at = time.monotonic()
        self.unsubscribed = set()
        self.feeds = {}
        self.stopped_feeds = []
        self.timeline = []
        self.wake = threading.Condition()
        self.out = False

    def now_ms(self):
        return (time.monotonic() - self.started_at) * 1000

    def enter(self, room, audio):
        self.started_at = time.monotonic()
        self.timeline = self.build_timeline()
        threading.Thread(target=self.run, name='sim-room', daemon=True).start()
        return 0

    def exit(self):
        self.end(lambda: None)
        return 0

    def kick(self):
        """What RemoveUser of the recorder does to the SDK: ERR_BANNED_BY_SERVER, then out."""
        self.end(lambda: self.delegate.OnError(ERR_BANNED_BY_SERVER))

    def unsubscribe(self, user_id, kind):
        with self.wake:
            self.unsubscribed.add((user_id, kind))
            feed = self.feeds.pop((user_id, kind), None)
        if feed:
            feed.stop()
            self.stopped_feeds.append(feed)
        return 0

    def end(self, before_exit):
        with self.wake:
            if self.out:
                return
            self.out = True
            feeds = list(self.feeds.values())
            self.feeds.clear()
            self.wake.notify()
        for feed in feeds:
            feed.stop()
        self.stopped_feeds.extend(feeds)
        before_exit()
        self.delegate.OnExitRoom()

    def close(self, timeout):
        """Before the process exits: its ffmpegs reaped (none left behind, their CPU accounted to us)."""
        deadline = time.monotonic() + timeout
        for feed in self.stopped_feeds + list(self.feeds.values()):
            feed.stop()
            try:
                feed.process.wait(max(0.01, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass

    def build_timeline(self):
        events = []
        user = SimUserInfo
        for presence in self.plan['presences']:
            user_id = presence['userId']
            join_ms, gone_ms = presence['joinMs'], presence['goneMs']
            kinds = [kind for kind in ('video', 'audio') if presence.get(kind)]
            announced = set()

            def announce(kind, available, user_id=user_id, announced=announced):
                if available:
                    announced.add(kind)
                else:
                    announced.discard(kind)
                if kind == 'audio':
                    self.delegate.OnRemoteAudioAvailable(user_id, available)
                else:
                    self.delegate.OnRemoteVideoAvailable(user_id, available, STREAM_TYPE_VIDEO_HIGH)

            def switch_off(kind, user_id=user_id, announced=announced, announce=announce):
                feed = self.feeds.get((user_id, kind))
                if feed:
                    feed.pause()
                if kind in announced:
                    announce(kind, False)

            def start_feeds(user_id=user_id, presence=presence, kinds=kinds):
                for kind in kinds:
                    if (user_id, kind) not in self.unsubscribed:
                        self.feeds[(user_id, kind)] = SimFeed(self, user_id, kind, presence[kind])

            events.append((max(0, join_ms - self.plan['prestartMs']), start_feeds))
            events.append((join_ms, lambda user_id=user_id: self.delegate.OnRemoteUserEnterRoom(user(user_id))))
            for kind in kinds:
                for stretch in presence[kind]['stretches']:
                    def switch_on(kind=kind, stretch=stretch, user_id=user_id, announce=announce):
                        announce(kind, True)
                        feed = self.feeds.get((user_id, kind))
                        if feed:
                            feed.play(stretch['fromMs'], stretch['untilMs'])
                    events.append((stretch['fromMs'], switch_on))
                    if stretch['untilMs'] < gone_ms:
                        events.append((stretch['untilMs'], lambda kind=kind, switch_off=switch_off: switch_off(kind)))
            if presence['leaves']:
                def leave(user_id=user_id, kinds=kinds, switch_off=switch_off):
                    for kind in kinds:
                        switch_off(kind)
                        feed = self.feeds.pop((user_id, kind), None)
                        if feed:
                            feed.stop()
                            self.stopped_feeds.append(feed)
                    self.delegate.OnRemoteUserExitRoom(user(user_id), 0)
                events.append((presence['leaveMs'], leave))
        end = self.plan['end']
        ending = (lambda: self.end(lambda: None)) if end['reason'] == 'dismissed' else self.kick
        events.append((end['atMs'], ending))
        # Stable: events at the same time run in the order planned, the room's end last.
        return sorted(enumerate(events), key=lambda item: (item[1][0], item[0]))

    def run(self):
        self.delegate.OnEnterRoom()
        for _, (at_ms, action) in self.timeline:
            with self.wake:
                while not self.out and self.now_ms() < at_ms:
                    self.wake.wait((at_ms - self.now_ms()) / 1000)
                if self.out:
                    return
            action()

    def deliver(self, user_id, kind, spec, data, pts_ms):
        if (user_id, kind) in self.unsubscribed or self.out:
            return
        if kind == 'video':
            self.delegate.OnRemotePixelFrameReceived(user_id, STREAM_TYPE_VIDEO_HIGH, SimFrame(data, pts_ms, width=spec['width'], height=spec['height']))
        else:
            self.delegate.OnRemoteAudioReceived(user_id, SimFrame(data, pts_ms, sample_rate=spec['sampleRate'], channels=spec['channels']))

    def feed_failed(self, user_id, kind, code):
        if not self.out:
            self.delegate.OnError(-1)
            say("simulated room: %s's %s ffmpeg exited with %s" % (user_id, kind, code))


# --- the process ---------------------------------------------------------------------------------


def exit_with_parent():
    """PR_SET_PDEATHSIG: SIGTERM here when the process that started us dies (also by SIGKILL)."""
    try:
        import ctypes  # noqa: PLC0415
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    except Exception as error:  # noqa: BLE001
        say('prctl(PR_SET_PDEATHSIG) failed: %r; relying on stdin EOF' % (error,))


def main():
    global diag
    parent = os.getppid()
    exit_with_parent()
    if os.getppid() != parent:
        os._exit(0)  # the parent died before prctl took effect
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is Node's to handle: it tells us to leave
    diag = os.fdopen(os.dup(2), 'w', buffering=1)
    for fd in (EVENTS_FD, AUDIO_FD, VIDEO_FD):
        os.set_blocking(fd, True)

    state = {'room': None, 'cloud': None, 'ring': None}
    stopping = threading.Event()

    def shutdown(code=0):
        if stopping.is_set():
            return
        stopping.set()
        # Whatever the steps below meet (a busy machine, a stuck SDK call), the process is gone by then.
        watchdog = threading.Timer(EXIT_DEADLINE_S, lambda: os._exit(code))
        watchdog.daemon = True
        watchdog.start()
        room = state['room']
        if room is not None:
            room.leave()
            room.wait_out(EXIT_WAIT_S)
            room.events.close(0.5)
            room.media.close()
            if hasattr(state['cloud'], 'close'):
                state['cloud'].close(1.0)
        os._exit(code)

    def broken():
        say('Node stopped reading; leaving')
        threading.Thread(target=shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, lambda *_: shutdown(0))
    events = EventChannel(EVENTS_FD, broken)
    media = MediaChannels(AUDIO_FD, VIDEO_FD, broken, lambda user_id, ms: events.send('audio-dropped', userId=user_id, ms=round(ms)))

    for raw in sys.stdin.buffer:
        try:
            command = json.loads(raw)
        except ValueError:
            say('ignoring a control line that is not JSON')
            continue
        op = command.get('op')
        if op == 'enter' and state['room'] is None:
            simulated = command.get('simulation') is not None
            console = None if simulated else ConsoleTail()
            room = Room(events, media, console)
            state['room'] = room
            try:
                if simulated:
                    cloud = SimulatedCloud(delegate_for(room, object), command['simulation'])
                else:
                    cloud = SdkCloud(delegate_for(room, _sdk_delegate_base()), command.get('logDir'))
            except ImportError as error:
                events.send('unavailable', message='liteav cannot be imported by %s: %s' % (sys.executable, error))
                events.close(2)
                os._exit(3)
            except Exception as error:  # noqa: BLE001
                events.send('unavailable', message='the TRTC SDK could not be started: %r' % (error,))
                events.close(2)
                os._exit(3)
            room.cloud = cloud
            state['cloud'] = cloud
            try:
                state['ring'] = VideoRing()
                ring_path = state['ring'].path
            except (AttributeError, OSError) as error:
                say('no shared memory for pictures (%r): they go through the pipe' % (error,))
                ring_path = None
            events.send('ready', sdk=cloud.name, version=cloud.version, pid=os.getpid(), videoRing=ring_path)
            room.enter(command)
        elif op == 'read' and state.get('ring') is not None:
            state['ring'].release(int(command.get('frames', 1)))
        elif op == 'video-ring' and state.get('ring') is not None:
            media.video.use_ring(state['ring'])
        elif op == 'leave' and state['room'] is not None:
            state['room'].leave()
        elif op == 'kick' and isinstance(state['cloud'], SimulatedCloud):
            state['cloud'].kick()
        else:
            say('ignoring control op %r' % (op,))
    shutdown(0)
    # Another thread is already leaving (Node stopped reading first): never return into the
    # interpreter's exit, which would freeze that thread; its watchdog ends the process.
    while True:
        time.sleep(1)


def _sdk_delegate_base():
    import liteav  # noqa: PLC0415
    return liteav.TRTCCloudDelegate


if __name__ == '__main__':
    main()

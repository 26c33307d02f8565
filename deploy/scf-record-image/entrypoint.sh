#!/bin/sh
# The SCF image's command (see Dockerfile): a virtual X display for Electron on Linux, then Electron
# running the image server (POST /event-invoke on $PORT, default 9000). SCF wants the port
# listening within 30 s of start. UNVERIFIED: never run on this project's machines.
set -eu

display="${DISPLAY:-:99}"
socket="/tmp/.X11-unix/X${display#:}"

# Xvfb stays in the background for the container's life; Electron (exec'd below) inherits it as a child.
Xvfb "$display" -screen 0 1280x720x24 -nolisten tcp -noreset >/tmp/xvfb.log 2>&1 &
xvfb_pid=$!

# Wait up to 5 s for the display's socket, so Electron does not start before the display exists.
i=0
while [ ! -S "$socket" ]; do
  if ! kill -0 "$xvfb_pid" 2>/dev/null; then
    echo "Xvfb exited; its log:" >&2
    cat /tmp/xvfb.log >&2
    exit 1
  fi
  i=$((i + 1))
  if [ "$i" -gt 50 ]; then
    echo "Xvfb did not create $socket within 5 s" >&2
    exit 1
  fi
  sleep 0.1
done

# --no-sandbox: Chromium's sandbox needs user namespaces or a setuid helper, which a function's
# container does not grant; no web content is ever loaded. The GPU and /dev/shm flags suit a headless
# container with a small /dev/shm.
exec /opt/app/node_modules/electron/dist/electron \
  --no-sandbox --disable-gpu --disable-dev-shm-usage \
  /opt/app

'use strict';
/*
 * Electron's main process in the SCF image (deploy/scf-record-image/Dockerfile): starts the image
 * server from the built function (/opt/app/scf-record/image-server.js) once Electron is ready, so the
 * recorder's require('trtc-electron-sdk') runs inside Electron. UNVERIFIED: never run on this
 * project's machines (no Electron, no display, no SDK addon here).
 */
const path = require('node:path');
const { app } = require('electron');

// Chromium keeps a profile under userData; SCF's file system is read-only except /tmp.
app.setPath('userData', path.join(process.env.TMPDIR || '/tmp', 'electron-user-data'));
app.disableHardwareAcceleration();

// No window is ever opened; without this listener Electron would still run, but say so explicitly.
app.on('window-all-closed', () => {});

// Electron may turn SIGTERM/SIGINT into app.quit() itself. The image server and the recorder listen
// for SIGTERM on `process` (stop accepting; stop recording, finalise, upload, answer, exit), so the
// first quit request is held and re-raised to them as SIGTERM; they end the process when done.
let terminating = false;
app.on('will-quit', (event) => {
  if (terminating) return;
  terminating = true;
  event.preventDefault();
  process.emit('SIGTERM', 'SIGTERM');
});

app
  .whenReady()
  .then(() => require('./scf-record/image-server.js').main())
  .catch((error) => {
    process.stderr.write(`scf-record image server failed to start: ${error && error.stack ? error.stack : String(error)}\n`);
    app.exit(1);
  });

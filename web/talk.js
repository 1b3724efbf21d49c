// The talk page: microphone in (WHIP, sendrecv audio), avatar video and re-timed voice back on the same
// connection. The avatar's voice is muted locally by default so the mic does not hear it (no echo).
import {
  authHeaders,
  fetchConfig,
  hangUp,
  negotiate,
  newPeerConnection,
  VideoActivity,
} from "/static/webrtc.js";

const STATS_INTERVAL_MS = 1000;
const $ = (id) => document.getElementById(id);
const video = $("avatar");
const activity = new VideoActivity(video);
const state = { pc: null, resource: null, mic: null, config: null, stats: {}, error: null };
window.lipstream = { state, activity };

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
  if (isError) state.error = text;
}

async function loadConfig() {
  state.config = await fetchConfig();
  const select = $("avatar-id");
  select.innerHTML = "";
  for (const id of state.config.avatars) {
    const short = id.slice(0, 12);
    const option = new Option(id === state.config.default_avatar ? `${short} (default)` : short, id);
    select.add(option);
  }
}

async function start() {
  const channel = $("channel").value || "main";
  setStatus("Asking for the microphone…");
  state.mic = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
  });
  const pc = newPeerConnection(state.config);
  state.pc = pc;
  pc.addTransceiver(state.mic.getAudioTracks()[0], { direction: "sendrecv" });
  pc.addTransceiver("video", { direction: "recvonly" });
  const stream = new MediaStream();
  pc.ontrack = (event) => {
    stream.addTrack(event.track);
    video.srcObject = stream;
  };
  pc.onconnectionstatechange = () => {
    if (state.pc !== pc) return;  // a connection we already stopped: its late events say nothing
    setStatus(`Connection ${pc.connectionState}.`, pc.connectionState === "failed");
    if (pc.connectionState === "failed") stop();
  };
  const query = new URLSearchParams({ channel, avatar: $("avatar-id").value });
  setStatus("Connecting…");
  state.resource = await negotiate(pc, `/whip?${query}`);
  $("viewer-link").href = `/viewer?channel=${encodeURIComponent(channel)}`;
  $("start").textContent = "Stop";
  $("start").className = "stop";
}

async function stop() {
  if (state.pc) await hangUp(state.pc, state.resource);
  if (state.mic) state.mic.getTracks().forEach((t) => t.stop());
  Object.assign(state, { pc: null, resource: null, mic: null });
  $("start").textContent = "Start talking";
  $("start").className = "";
}

async function toggle() {
  try {
    if (state.pc) await stop();
    else await start();
  } catch (error) {
    await stop();
    setStatus(`Could not start: ${error.message}`, true);
  }
}

async function upload() {
  const file = $("photo").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("photo", file);
  setStatus("Preparing the avatar…");
  const response = await fetch("/api/avatars", { method: "POST", body: form, headers: authHeaders() });
  const body = await response.json();
  if (!response.ok) {
    setStatus(`Photo refused: ${body.error}`, true);
    return;
  }
  await loadConfig();
  $("avatar-id").value = body.id;
  setStatus(`Avatar ready${body.notes.length ? " (" + body.notes.join("; ") + ")" : ""}.`);
  if (state.pc) {
    await stop();
    await start();
  }
}

async function updateStats() {
  activity.sample();
  if (!state.pc || !state.resource) return;
  let fps = null;
  let jitterMs = null;
  const report = await state.pc.getStats();
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") {
      fps = s.framesPerSecond ?? null;
      if (s.jitterBufferEmittedCount) jitterMs = (1000 * s.jitterBufferDelay) / s.jitterBufferEmittedCount;
    }
  });
  let server = {};
  const response = await fetch(`${state.resource}/stats`, { headers: authHeaders() });
  if (response.ok) server = await response.json();
  state.stats = { fps, jitterMs, ...server };
  const fmt = (v, unit) => (v == null ? "–" : `${Math.round(v)} ${unit}`);
  $("stats").innerHTML =
    `video: ${fmt(fps, "fps")}<br>` +
    `server pipeline delay: ${fmt(server.pipeline_delay_ms, "ms")} ` +
    `(waits for ${fmt(server.lookahead_ms, "ms")} of audio past each frame)<br>` +
    `video jitter buffer: ${fmt(jitterMs, "ms")}<br>` +
    `frames: ${server.frames_rendered ?? "–"} sent, ${server.frames_dropped ?? "–"} dropped`;
}

$("start").onclick = toggle;
$("photo").onchange = upload;
$("hear").onchange = () => { video.muted = !$("hear").checked; };
$("channel").oninput = () => {
  $("viewer-link").href = `/viewer?channel=${encodeURIComponent($("channel").value)}`;
};
setInterval(() => updateStats().catch((e) => console.warn(e)), STATS_INTERVAL_MS);
setInterval(() => activity.sample(), 200);
await loadConfig();
const params = new URLSearchParams(location.search);
if (params.get("channel")) $("channel").value = params.get("channel");
if (params.get("autostart") === "1") toggle();

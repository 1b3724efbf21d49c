// The rig demo: a vector face driven by /ws/events alone (no video), to show the per-frame events
// are enough for a 2-D or 3-D rig. Mouth from jawOpen, smile/pucker, funnel and mouthClose; eyes
// from eyeBlinkLeft/Right.
import { tokenQuery } from "/static/webrtc.js";

const RETRY_MS = 2000;
const params = new URLSearchParams(location.search);
const channel = params.get("channel") || "main";
const $ = (id) => document.getElementById(id);
const state = { frames: 0, last: null, status: "connecting", jawOpen: [] };
window.lipstream = { state };

function draw(weights) {
  const open = weights.jawOpen || 0;
  const smile = ((weights.mouthSmileLeft || 0) + (weights.mouthSmileRight || 0)) / 2;
  const pucker = Math.max(weights.mouthPucker || 0, weights.mouthFunnel || 0);
  const close = weights.mouthClose || 0;
  const half = 28 + 12 * smile - 12 * pucker;  // mouth half-width
  const gap = 34 * open * (1 - 0.8 * close);     // lip separation
  const y = 45;
  $("upper").setAttribute("d",
    `M ${-half} ${y} Q 0 ${y - 10 - 4 * smile} ${half} ${y} Q 0 ${y - 3 + gap * 0.3} ${-half} ${y} Z`);
  $("lower").setAttribute("d",
    `M ${-half} ${y} Q 0 ${y + 3 + gap} ${half} ${y} Q 0 ${y + 12 + gap * 1.3} ${-half} ${y} Z`);
  $("eyeL").setAttribute("ry", String(9 * (1 - (weights.eyeBlinkLeft || 0)) + 0.5));
  $("eyeR").setAttribute("ry", String(9 * (1 - (weights.eyeBlinkRight || 0)) + 0.5));
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = new URLSearchParams({ channel });
  const socket = new WebSocket(`${scheme}://${location.host}/ws/events?${query}${tokenQuery()}`);
  socket.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.type !== "frame") return;
    state.frames += 1;
    state.last = event;
    state.jawOpen.push(event.weights.jawOpen);
    if (state.jawOpen.length > 500) state.jawOpen.shift();
    state.status = event.speaking ? `speaking (${event.viseme})` : "idle";
    $("status").textContent = `${channel}: ${state.status}`;
    draw(event.weights);
  };
  socket.onclose = () => {
    state.status = "reconnecting";
    $("status").textContent = `${channel}: reconnecting`;
    setTimeout(connect, RETRY_MS);
  };
}

draw({});
connect();

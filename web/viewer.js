// The viewer page (OBS browser source): WHEP, the avatar alone, full window, autoplay. A channel
// outlives its speakers: the page stays connected, showing the idle face ("waiting for a speaker")
// until somebody speaks, and reconnects only if the connection itself fails.
import { fetchConfig, hangUp, negotiate, newPeerConnection, VideoActivity } from "/static/webrtc.js";

const RETRY_MS = 2000;
const params = new URLSearchParams(location.search);
const channel = params.get("channel") || "main";
const background = params.get("bg");
const video = document.getElementById("avatar");
const unmute = document.getElementById("unmute");
const activity = new VideoActivity(video);
const status = document.getElementById("status");
const state = { pc: null, resource: null, status: "starting", idle: null, events: 0 };
window.lipstream = { state, activity };

if (background) {
  const colour = /^[0-9a-fA-F]{3,8}$/.test(background) ? `#${background}` : background;
  document.documentElement.style.setProperty("--bg", colour);
}

async function play() {
  try {
    await video.play();
  } catch {
    // Browsers (not OBS) refuse autoplay with sound until the user interacts: play muted meanwhile.
    video.muted = true;
    unmute.style.display = "block";
    await video.play().catch(() => {});
  }
}

unmute.onclick = () => {
  video.muted = false;
  unmute.style.display = "none";
};

function show(text) {
  state.status = text;
  status.textContent = text === "watching" ? "" : text;
}

async function connect() {
  const config = await fetchConfig();
  const pc = newPeerConnection(config);
  state.pc = pc;
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const events = pc.createDataChannel("events");
  events.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.type !== "frame") return;
    state.events += 1;
    if (event.idle !== state.idle) {
      state.idle = event.idle;
      show(event.idle ? "waiting for a speaker" : "watching");
    }
  };
  const stream = new MediaStream();
  pc.ontrack = (event) => {
    stream.addTrack(event.track);
    video.srcObject = stream;
    play();
  };
  const ended = new Promise((resolve) => {
    pc.onconnectionstatechange = () => {
      if (["failed", "closed", "disconnected"].includes(pc.connectionState)) resolve();
    };
  });
  state.resource = await negotiate(pc, `/whep/${encodeURIComponent(channel)}`);
  show("waiting for a speaker");
  await ended;
}

async function run() {
  for (;;) {
    try {
      await connect();
    } catch (error) {
      show(`cannot connect (${error.message}); retrying`);
    }
    if (state.pc) await hangUp(state.pc, null);
    state.pc = null;
    await new Promise((r) => setTimeout(r, RETRY_MS));
  }
}

setInterval(() => activity.sample(), 200);
run();

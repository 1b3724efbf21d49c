// The viewer page (OBS browser source): WHEP, the avatar alone, full window, autoplay. It waits for a
// speaker on the channel and reconnects when a session ends, so an OBS scene can stay open all day.
import { fetchConfig, hangUp, negotiate, newPeerConnection, VideoActivity } from "/static/webrtc.js";

const RETRY_MS = 2000;
const params = new URLSearchParams(location.search);
const channel = params.get("channel") || "main";
const background = params.get("bg");
const video = document.getElementById("avatar");
const unmute = document.getElementById("unmute");
const activity = new VideoActivity(video);
const state = { pc: null, resource: null, status: "starting" };
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

async function connect() {
  const config = await fetchConfig();
  const pc = newPeerConnection(config);
  state.pc = pc;
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
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
  state.status = "watching";
  await ended;
}

async function run() {
  for (;;) {
    try {
      await connect();
    } catch (error) {
      state.status = error.status === 404 ? "waiting for a speaker" : `error: ${error.message}`;
    }
    if (state.pc) await hangUp(state.pc, null);
    state.pc = null;
    await new Promise((r) => setTimeout(r, RETRY_MS));
  }
}

setInterval(() => activity.sample(), 200);
run();

// WHIP/WHEP helpers shared by the talk and viewer pages. Non-trickle: the offer is sent once ICE
// gathering is complete, which is what WHIP/WHEP servers without PATCH support expect.

const GATHER_TIMEOUT_MS = 3000; // host candidates arrive in milliseconds; STUN/TURN can take longer
const SAMPLE_SIZE = 128; // the video is compared at this size: enough to see lips move in a 512px frame

// The server's token (lipstream serve --token): the URL printed at start carries it once as
// ?token=; the page keeps it in localStorage, removes it from the address bar, and
// sends it as "Authorization: Bearer" (RFC 9725). WebSockets cannot send headers: see tokenQuery.
const TOKEN_KEY = "lipstream_token";

function takeToken() {
  const url = new URL(window.location.href);
  const fromUrl = url.searchParams.get("token");
  if (fromUrl) {
    localStorage.setItem(TOKEN_KEY, fromUrl);
    url.searchParams.delete("token");
    window.history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
  return localStorage.getItem(TOKEN_KEY);
}

export const token = takeToken();

export function authHeaders(headers = {}) {
  return token ? { ...headers, Authorization: `Bearer ${token}` } : headers;
}

// For WebSocket URLs only: "&token=..." or "".
export function tokenQuery() {
  return token ? `&token=${encodeURIComponent(token)}` : "";
}

export async function fetchConfig() {
  const response = await fetch("/api/config", { headers: authHeaders() });
  if (!response.ok) throw new Error(`/api/config: HTTP ${response.status} (is the token right?)`);
  return response.json();
}

export function newPeerConnection(config) {
  const iceServers = (config.ice_servers || []).map(parseIceServer);
  return new RTCPeerConnection({ iceServers });
}

// The server sends {urls, username?, credential?} (short-lived TURN credentials, never its own);
// a plain string "stun:host" is accepted too.
function parseIceServer(server) {
  return typeof server === "string" ? { urls: server } : server;
}

function gatheringComplete(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, GATHER_TIMEOUT_MS);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

// Posts the offer to a WHIP/WHEP endpoint; returns the resource URL. Throws Error(server's reason).
export async function negotiate(pc, endpoint) {
  await pc.setLocalDescription(await pc.createOffer());
  await gatheringComplete(pc);
  const response = await fetch(endpoint, {
    method: "POST",
    headers: authHeaders({ "Content-Type": "application/sdp" }),
    body: pc.localDescription.sdp,
  });
  const body = await response.text();
  if (response.status !== 201) {
    const error = new Error(body.trim() || `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  await pc.setRemoteDescription({ type: "answer", sdp: body });
  return response.headers.get("Location");
}

export async function hangUp(pc, resource) {
  if (resource) {
    try {
      await fetch(resource, { method: "DELETE", headers: authHeaders() });
    } catch (e) {
      console.warn("DELETE failed", e);
    }
  }
  pc.close();
}

// Samples a playing <video> into a small canvas and reports how much consecutive samples differ, so
// tests and the stats readout can tell a live avatar from a frozen one.
export class VideoActivity {
  constructor(video) {
    this.video = video;
    this.canvas = document.createElement("canvas");
    this.canvas.width = SAMPLE_SIZE;
    this.canvas.height = SAMPLE_SIZE;
    this.context = this.canvas.getContext("2d", { willReadFrequently: true });
    this.previous = null;
    this.lastDiff = 0;
    this.maxDiff = 0;
    this.samples = 0;
  }

  sample() {
    if (this.video.readyState < 2) return;
    this.context.drawImage(this.video, 0, 0, SAMPLE_SIZE, SAMPLE_SIZE);
    const pixels = this.context.getImageData(0, 0, SAMPLE_SIZE, SAMPLE_SIZE).data;
    if (this.previous) {
      let sum = 0;
      for (let i = 0; i < pixels.length; i += 4) sum += Math.abs(pixels[i] - this.previous[i]);
      this.lastDiff = sum / (pixels.length / 4);
      this.maxDiff = Math.max(this.maxDiff, this.lastDiff);
    }
    this.previous = pixels;
    this.samples += 1;
  }

  report() {
    const quality = this.video.getVideoPlaybackQuality ? this.video.getVideoPlaybackQuality() : {};
    return {
      width: this.video.videoWidth,
      height: this.video.videoHeight,
      currentTime: this.video.currentTime,
      paused: this.video.paused,
      framesDecoded: quality.totalVideoFrames || 0,
      samples: this.samples,
      lastDiff: this.lastDiff,
      maxDiff: this.maxDiff,
    };
  }
}

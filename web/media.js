// WHIP (publish) and WHEP (play) clients: one SDP offer POSTed, the answer back, the
// session's Location to DELETE when done. Candidates are gathered before the offer is sent
// (no trickle), which on a LAN or with a public server takes well under a second.

const GATHER_LIMIT_MS = 2000;

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState !== "complete") return;
      pc.removeEventListener("icegatheringstatechange", done);
      resolve();
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, GATHER_LIMIT_MS); // send what we have rather than wait forever
  });
}

export class MediaError extends Error {
  constructor(message, status, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

async function exchange(pc, url, token) {
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const headers = { "Content-Type": "application/sdp" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(url, { method: "POST", headers, body: pc.localDescription.sdp });
  if (response.status !== 201) {
    const problem = await response.json().catch(() => ({}));
    const retry = Number(response.headers.get("Retry-After")) || null;
    throw new MediaError(problem.detail || `HTTP ${response.status}`, response.status, retry);
  }
  const location = new URL(response.headers.get("Location"), url).toString();
  await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
  return location;
}

function hangUp(location, token) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  // keepalive: the goodbye still goes out when the page is closing.
  return fetch(location, { method: "DELETE", headers, keepalive: true }).catch(() => {});
}

// H.264 first where the browser can send it: the server can then remux it for HLS without
// re-encoding. Otherwise the browser's own order (VP8 in most).
function preferH264(transceiver) {
  const capabilities = RTCRtpSender.getCapabilities?.("video");
  if (!capabilities || !transceiver.setCodecPreferences) return;
  const h264 = capabilities.codecs.filter((c) => c.mimeType === "video/H264" && /packetization-mode=1/.test(c.sdpFmtpLine || ""));
  const rest = capabilities.codecs.filter((c) => !h264.includes(c));
  if (h264.length) transceiver.setCodecPreferences([...h264, ...rest]);
}

// Publish `stream` to /whip/{showId}. Returns { pc, stop }.
export async function publish(showId, stream, token) {
  const pc = new RTCPeerConnection();
  for (const track of stream.getTracks()) {
    const transceiver = pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
    if (track.kind === "video") preferH264(transceiver);
  }
  let location;
  try {
    location = await exchange(pc, new URL(`/whip/${showId}`, window.location.href).toString(), token);
  } catch (error) {
    pc.close();
    throw error;
  }
  return {
    pc,
    async stop() {
      pc.close();
      await hangUp(location, token);
    },
  };
}

// Play /whep/{showId} in `video`, coming back on its own after a network drop or before the
// host has started. onState(text) reports "connecting", "playing", "waiting" or "retrying".
// onFailure(n) hears each failed attempt to connect (n in a row: ICE or DTLS failed, or the
// WHEP request was refused; the host not broadcasting yet, or no answer at all, is not a
// failure), so a page can give up on WebRTC and play HLS instead.
export function play(showId, video, onState = () => {}, onFailure = () => {}) {
  let pc = null;
  let failures = 0;
  const failed = () => onFailure(++failures);
  let location = null;
  let stopped = false;
  let timer = null;

  const retry = (seconds) => {
    if (stopped) return;
    onState("retrying");
    clearTimeout(timer);
    timer = setTimeout(connect, seconds * 1000);
  };

  async function connect() {
    if (stopped) return;
    pc?.close();
    onState("connecting");
    pc = new RTCPeerConnection();
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    const stream = new MediaStream();
    pc.addEventListener("track", (event) => {
      stream.addTrack(event.track);
      video.srcObject = stream;
    });
    const mine = pc;
    pc.addEventListener("connectionstatechange", () => {
      if (mine !== pc) return;
      if (pc.connectionState === "connected") {
        failures = 0;
        onState("playing");
      }
      if (pc.connectionState === "failed") {
        failed();
        retry(1);
      }
    });
    try {
      location = await exchange(pc, new URL(`/whep/${showId}`, window.location.href).toString());
    } catch (error) {
      if (error.status === 503) {
        onState("waiting");
        retry(error.retryAfter || 2);
      } else if (error.status === 409) {
        onState("ended");
      } else {
        // The server answered with an error (a proxy in the way, say): WebRTC cannot get
        // through here. No answer at all (the server restarting, the phone offline) is not
        // that: HLS would not get through either, so simply try again.
        if (error.status) failed();
        retry(3);
      }
    }
  }

  connect();
  addEventListener("pagehide", () => location && hangUp(location));
  return {
    // The WHEP session id (the last part of its Location): the watch-time beats name it.
    session: () => (location ? new URL(location).pathname.split("/").pop() : null),
    stop() {
      stopped = true;
      clearTimeout(timer);
      pc?.close();
      if (location) hangUp(location);
    },
  };
}

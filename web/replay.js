// The replay: the show's live HLS, finished as VOD when the show ended, played with hls.js
// (from npm, served at /vendor/hls.min.js) or the browser's own HLS player (Safari), with
// the show's products on screen at the moments they were pinned (the replay's `moments`,
// already on the video's timeline: GET /api/v1/shows/{id}/replay).

let loading = null;

function loadHls() {
  loading ??= new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = "/vendor/hls.min.js";
    script.onload = () => resolve(window.Hls);
    script.onerror = () => reject(new Error("the HLS player did not load"));
    document.head.append(script);
  });
  return loading;
}

// Plays `url` in `video` from `startAt` seconds (a replay), or near the live edge with
// `live` (the show's live HLS, where WebRTC cannot play). Answers {stop()}.
export async function playReplay(video, url, startAt = 0, { live = false } = {}) {
  // hls.js wherever Media Source Extensions are (its retries and live-edge control are the
  // ones we tune); the browser's own HLS player elsewhere (iOS Safari).
  const Hls = await loadHls().catch(() => null);
  if (Hls && Hls.isSupported()) {
    // Live: two segments (about 4 s) behind the edge rather than hls.js's default three.
    const hls = new Hls(live ? { liveSyncDurationCount: 2 } : { startPosition: startAt > 0 ? startAt : -1 });
    let retry = null;
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (!data.fatal) return;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
      else if (data.type === Hls.ErrorTypes.NETWORK_ERROR) {
        // A dropped connection, or no playlist yet (the host has not started): try again.
        clearTimeout(retry);
        retry = setTimeout(() => (data.details === "manifestLoadError" ? hls.loadSource(url) : hls.startLoad()), 2000);
      }
    });
    hls.loadSource(url);
    hls.attachMedia(video);
    return { stop: () => { clearTimeout(retry); hls.destroy(); } };
  }
  video.src = url; // iOS Safari: HLS natively
  if (startAt > 0) video.addEventListener("loadedmetadata", () => { video.currentTime = startAt; }, { once: true });
  // A live playlist not there yet (the host has not started) or a dropped connection: again.
  let retry = null;
  const again = () => {
    clearTimeout(retry);
    retry = setTimeout(() => { video.src = url; video.play().catch(() => {}); }, 2000);
  };
  video.addEventListener("error", again);
  return { stop: () => { clearTimeout(retry); video.removeEventListener("error", again); video.removeAttribute("src"); video.load(); } };
}

// The moments whose card is on screen at `t` seconds.
export function momentsAt(moments, t) {
  return moments.filter((m) => m.at_s <= t && (m.until_s === null || t < m.until_s));
}

export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(h ? 2 : 1, "0");
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

// Studio page: the host opens their show, previews camera and microphone, goes live,
// broadcasts over WHIP, watches the stream's health and ends the show.
import { api, formatTime, showError, showIdFromPath, storedToken } from "/web/common.js";
import { publish } from "/web/media.js";

const $ = (id) => document.getElementById(id);
const showId = showIdFromPath();
const token = storedToken("showroom.host", $("token"));
const errorBox = $("error");
let stream = null;
let show = null;
let broadcast = null;

function render(loaded) {
  show = loaded;
  document.title = `${show.title} · Studio`;
  $("show-title").textContent = show.title;
  $("show-state").textContent = show.state;
  $("show-state").className = `state ${show.state}`;
  $("when").textContent = `Scheduled ${formatTime(show.scheduled_start, show.locale)}${show.host_name ? ` · host ${show.host_name}` : ""}`;
  $("start").disabled = show.state !== "scheduled";
  $("end").disabled = show.state !== "live";
  renderBroadcast();
}

function renderBroadcast() {
  $("broadcast").disabled = !(show?.state === "live" && stream && !broadcast);
  $("stop").disabled = !broadcast;
}

const STATUS = {
  idle: "Not broadcasting yet",
  publishing: "Broadcasting",
  host_reconnecting: "Connection lost: reconnecting…",
  stopped: "Broadcast stopped",
};

async function pollHealth() {
  if (show?.state !== "live") return;
  const h = await api(`/api/v1/shows/${showId}/stream`);
  const size = h.width ? ` · ${h.width}×${h.height}` : "";
  const codec = h.video_codec ? ` · ${h.video_codec}` : "";
  $("health").textContent = h.status === "publishing"
    ? `${STATUS.publishing}${codec}${size} · ${Math.round(h.bitrate_kbps)} kb/s · ${h.frame_rate} fps · ${h.viewers} watching`
    : STATUS[h.status];
  $("health").dataset.status = h.status;
}

async function startBroadcast() {
  broadcast = await publish(showId, stream, token());
  broadcast.pc.addEventListener("connectionstatechange", () => {
    // The network dropped: publish again (the server takes the new session over the stale one).
    if (broadcast && broadcast.pc.connectionState === "failed") {
      broadcast = null;
      setTimeout(() => run(startBroadcast), 1000);
    }
  });
  renderBroadcast();
}

async function stopBroadcast() {
  const current = broadcast;
  broadcast = null;
  renderBroadcast();
  await current?.stop();
}

async function run(work) {
  errorBox.hidden = true;
  try {
    await work();
  } catch (error) {
    showError(errorBox, error);
  }
}

const load = () => run(async () => render(await api(`/api/v1/shows/${showId}`, { token: token() })));
const act = (action) => run(async () =>
  render(await api(`/api/v1/shows/${showId}/${action}`, { token: token(), method: "POST" })));

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [kind, select] of [["videoinput", $("camera")], ["audioinput", $("microphone")]]) {
    const chosen = select.value;
    select.replaceChildren(...devices.filter((d) => d.kind === kind).map((d, i) => {
      const option = new Option(d.label || `${kind === "videoinput" ? "Camera" : "Microphone"} ${i + 1}`, d.deviceId);
      option.selected = d.deviceId === chosen;
      return option;
    }));
  }
}

async function preview() {
  stream?.getTracks().forEach((track) => track.stop());
  const camera = $("camera").value;
  const microphone = $("microphone").value;
  stream = await navigator.mediaDevices.getUserMedia({
    video: camera ? { deviceId: { exact: camera } } : { facingMode: "user" },
    audio: microphone ? { deviceId: { exact: microphone } } : true,
  });
  $("video").srcObject = stream;
  // Switching camera or microphone mid-broadcast: viewers get the new one, no renegotiation.
  for (const sender of broadcast?.pc.getSenders() ?? []) {
    const next = stream.getTracks().find((t) => t.kind === sender.track?.kind);
    if (next) await sender.replaceTrack(next);
  }
  renderBroadcast();
  await listDevices(); // labels appear once permission is granted
}

$("load").addEventListener("click", load);
$("start").addEventListener("click", () => act("start"));
$("end").addEventListener("click", async () => {
  await stopBroadcast();
  await act("end");
});
$("broadcast").addEventListener("click", () => run(startBroadcast));
$("stop").addEventListener("click", () => run(stopBroadcast));
setInterval(() => pollHealth().catch(() => {}), 2000);
$("preview").addEventListener("click", () => run(preview));
$("camera").addEventListener("change", () => stream && run(preview));
$("microphone").addEventListener("change", () => stream && run(preview));
if (navigator.mediaDevices) run(listDevices);
else $("preview").disabled = true;
if (token()) load();

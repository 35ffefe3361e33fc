// Studio page: the host opens their show, previews camera and microphone, goes live and ends.
import { api, formatTime, showError, showIdFromPath, storedToken } from "/web/common.js";

const $ = (id) => document.getElementById(id);
const showId = showIdFromPath();
const token = storedToken("showroom.host", $("token"));
const errorBox = $("error");
let stream = null;

function render(show) {
  document.title = `${show.title} · Studio`;
  $("show-title").textContent = show.title;
  $("show-state").textContent = show.state;
  $("show-state").className = `state ${show.state}`;
  $("when").textContent = `Scheduled ${formatTime(show.scheduled_start, show.locale)}${show.host_name ? ` · host ${show.host_name}` : ""}`;
  $("start").disabled = show.state !== "scheduled";
  $("end").disabled = show.state !== "live";
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
  await listDevices(); // labels appear once permission is granted
}

$("load").addEventListener("click", load);
$("start").addEventListener("click", () => act("start"));
$("end").addEventListener("click", () => act("end"));
$("preview").addEventListener("click", () => run(preview));
$("camera").addEventListener("change", () => stream && run(preview));
$("microphone").addEventListener("change", () => stream && run(preview));
if (navigator.mediaDevices) run(listDevices);
else $("preview").disabled = true;
if (token()) load();

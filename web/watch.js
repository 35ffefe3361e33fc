// Watch page (mobile first): the live video first, then the show and its products, in the show's language.
import { api, el, formatMoney, formatTime, pick, showError, showIdFromPath } from "/web/common.js";
import { play } from "/web/media.js";
import { io } from "/vendor/socket.io.esm.min.js";

const BEAT_SECONDS = 10;

const $ = (id) => document.getElementById(id);
const WORDS = {
  "zh-HK": { video: { connecting: "連線中…", playing: "", waiting: "主持人即將開始", retrying: "重新連線中…", ended: "直播已結束", host_reconnecting: "主持人重新連線中…" },
    points: (n) => `${n} 積分`, about: "節目", products: "商品", starts: "開始時間", host: "主持", left: (n) => `只剩 ${n} 件`, soldOut: "售罄",
    state: { scheduled: "即將開始", live: "直播中", ended: "已結束", cancelled: "已取消" } },
  "zh-CN": { video: { connecting: "连接中…", playing: "", waiting: "主持人即将开始", retrying: "重新连接中…", ended: "直播已结束", host_reconnecting: "主持人重新连接中…" },
    points: (n) => `${n} 积分`, about: "节目", products: "商品", starts: "开始时间", host: "主持", left: (n) => `仅剩 ${n} 件`, soldOut: "售罄",
    state: { scheduled: "即将开始", live: "直播中", ended: "已结束", cancelled: "已取消" } },
  en: { video: { connecting: "Connecting…", playing: "", waiting: "The host is about to start", retrying: "Reconnecting…", ended: "The live has ended", host_reconnecting: "The host is reconnecting…" },
    points: (n) => `${n} points`, about: "Show", products: "Products", starts: "Starts", host: "Host", left: (n) => `Only ${n} left`, soldOut: "Sold out",
    state: { scheduled: "Coming up", live: "Live", ended: "Ended", cancelled: "Cancelled" } },
};

function productCard(product, locale, words) {
  const stock = product.stock === 0
    ? el("span", { class: "badge out" }, words.soldOut)
    : product.stock <= 5 ? el("span", { class: "badge" }, words.left(product.stock)) : null;
  const title = pick(product.title, locale);
  return el("li", { class: "card" },
    product.image_url ? el("img", { src: product.image_url, alt: title, loading: "lazy" }) : null,
    el("div", { class: "body" },
      el("div", { class: "title" }, title),
      el("div", {},
        el("span", { class: "price" }, formatMoney(product.price, locale)),
        product.compare_at_price ? el("span", { class: "was" }, formatMoney(product.compare_at_price, locale)) : null),
      stock));
}

function showPoints(balance, words) {
  const badge = $("points");
  const before = Number(badge.dataset.balance ?? balance);
  badge.dataset.balance = balance;
  badge.textContent = words.points(balance);
  badge.hidden = false;
  if (balance > before) {
    badge.classList.add("rise");
    setTimeout(() => badge.classList.remove("rise"), 400);
  }
}

// The live room: join, and tell the server what the player is doing (it measures watch time
// from that and the media it relays; see docs/realtime.md). A member's points arrive here.
function joinRoom(showId, token, player, words) {
  const socket = io("/live", { auth: token ? { token } : {}, transports: ["websocket"] });
  const video = $("player");
  let active = false;
  for (const kind of ["pointerdown", "keydown", "scroll"]) addEventListener(kind, () => { active = true; }, { passive: true });
  const beat = () => {
    if (!socket.connected) return;
    socket.emit("watch:beat", {
      playing: !video.paused && video.readyState >= 2,
      visible: document.visibilityState === "visible",
      session: player.session() ?? undefined,
      active,
    });
    active = false;
  };
  socket.on("connect", () => {
    const ref = new URLSearchParams(window.location.search).get("ref");
    socket.emit("join", ref ? { show_id: showId, ref } : { show_id: showId });
  });
  socket.on("points", (event) => showPoints(event.balance, words));
  setInterval(beat, BEAT_SECONDS * 1000);
  document.addEventListener("visibilitychange", beat);
  video.addEventListener("playing", beat);
  video.addEventListener("pause", beat);
  return socket;
}

function watchLive(showId, words) {
  const status = $("player-state");
  let connection = "connecting";
  let host = "publishing";
  const render = () => {
    status.textContent = host === "host_reconnecting" ? words.video.host_reconnecting : words.video[connection];
    status.dataset.state = connection;
  };
  return play(showId, $("player"), (state) => { connection = state; render(); });
  // The picture freezes while the host's network is down: say so instead of leaving it frozen.
  setInterval(async () => {
    try {
      host = (await api(`/api/v1/shows/${showId}/stream`)).status;
      render();
    } catch { /* the next poll tries again */ }
  }, 3000);
}

async function main() {
  // A member arrives from the brand's app with its viewer token in the fragment (never sent
  // in a request line or logged); anyone else watches as a guest, with a guest cookie.
  const token = new URLSearchParams(window.location.hash.slice(1)).get("token");
  if (token) history.replaceState(null, "", window.location.pathname + window.location.search);
  else await api("/api/v1/guest-session", { method: "POST" });
  const show = await api(`/api/v1/shows/${showIdFromPath()}`, { token });
  const locale = WORDS[show.locale] ? show.locale : "zh-HK";
  const words = WORDS[locale];
  document.documentElement.lang = locale;
  document.title = show.title;
  $("title").textContent = show.title;
  $("state").textContent = words.state[show.state];
  $("state").className = `state ${show.state}`;
  $("about-h").textContent = words.about;
  $("when").textContent = `${words.starts}: ${formatTime(show.scheduled_start, locale)}${show.host_name ? ` · ${words.host}: ${show.host_name}` : ""}`;
  $("description").textContent = show.description;
  $("products-h").textContent = words.products;
  if (show.state === "live") {
    const player = watchLive(show.id, words);
    joinRoom(show.id, token, player, words);
  }
  if (token) showPoints((await api("/api/v1/me/points", { token })).balance, words);
  const page = await api("/api/v1/products?limit=100", { token });
  $("products").replaceChildren(...page.items.map((p) => productCard(p, locale, words)));
}

main().catch((error) => showError($("error"), error));

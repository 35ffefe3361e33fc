// Watch page (mobile first): the live video first, then the show and its products, in the show's language.
import { api, el, formatMoney, formatTime, pick, showError, showIdFromPath } from "/web/common.js";
import { play } from "/web/media.js";

const $ = (id) => document.getElementById(id);
const WORDS = {
  "zh-HK": { video: { connecting: "連線中…", playing: "", waiting: "主持人即將開始", retrying: "重新連線中…", ended: "直播已結束", host_reconnecting: "主持人重新連線中…" },
    about: "節目", products: "商品", starts: "開始時間", host: "主持", left: (n) => `只剩 ${n} 件`, soldOut: "售罄",
    state: { scheduled: "即將開始", live: "直播中", ended: "已結束", cancelled: "已取消" } },
  "zh-CN": { video: { connecting: "连接中…", playing: "", waiting: "主持人即将开始", retrying: "重新连接中…", ended: "直播已结束", host_reconnecting: "主持人重新连接中…" },
    about: "节目", products: "商品", starts: "开始时间", host: "主持", left: (n) => `仅剩 ${n} 件`, soldOut: "售罄",
    state: { scheduled: "即将开始", live: "直播中", ended: "已结束", cancelled: "已取消" } },
  en: { video: { connecting: "Connecting…", playing: "", waiting: "The host is about to start", retrying: "Reconnecting…", ended: "The live has ended", host_reconnecting: "The host is reconnecting…" },
    about: "Show", products: "Products", starts: "Starts", host: "Host", left: (n) => `Only ${n} left`, soldOut: "Sold out",
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

function watchLive(showId, words) {
  const status = $("player-state");
  let connection = "connecting";
  let host = "publishing";
  const render = () => {
    status.textContent = host === "host_reconnecting" ? words.video.host_reconnecting : words.video[connection];
    status.dataset.state = connection;
  };
  play(showId, $("player"), (state) => { connection = state; render(); });
  // The picture freezes while the host's network is down: say so instead of leaving it frozen.
  setInterval(async () => {
    try {
      host = (await api(`/api/v1/shows/${showId}/stream`)).status;
      render();
    } catch { /* the next poll tries again */ }
  }, 3000);
}

async function main() {
  // A guest cookie first, so the API knows this browser (members sign in through the brand's app).
  await api("/api/v1/guest-session", { method: "POST" });
  const show = await api(`/api/v1/shows/${showIdFromPath()}`);
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
  if (show.state === "live") watchLive(show.id, words);
  const page = await api("/api/v1/products?limit=100");
  $("products").replaceChildren(...page.items.map((p) => productCard(p, locale, words)));
}

main().catch((error) => showError($("error"), error));

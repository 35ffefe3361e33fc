// Watch page (mobile first): the show's details and its products, in the show's language.
import { api, el, formatMoney, formatTime, pick, showError, showIdFromPath } from "/web/common.js";

const $ = (id) => document.getElementById(id);
const WORDS = {
  "zh-HK": { about: "節目", products: "商品", starts: "開始時間", host: "主持", left: (n) => `只剩 ${n} 件`, soldOut: "售罄",
    state: { scheduled: "即將開始", live: "直播中", ended: "已結束", cancelled: "已取消" } },
  "zh-CN": { about: "节目", products: "商品", starts: "开始时间", host: "主持", left: (n) => `仅剩 ${n} 件`, soldOut: "售罄",
    state: { scheduled: "即将开始", live: "直播中", ended: "已结束", cancelled: "已取消" } },
  en: { about: "Show", products: "Products", starts: "Starts", host: "Host", left: (n) => `Only ${n} left`, soldOut: "Sold out",
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
  const page = await api("/api/v1/products?limit=100");
  $("products").replaceChildren(...page.items.map((p) => productCard(p, locale, words)));
}

main().catch((error) => showError($("error"), error));

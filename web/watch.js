// Watch page (mobile first): the live video with the pinned products under it, hearts, chat,
// buy now and the cart, in the show's language (or the browser's). Everything the room says
// arrives over the live room (docs/realtime.md); buying goes through the HTTP API (docs/api.md).
// Text from people and the catalog is always put in the page as text, never as HTML.
import { api, chooseLocale, el, formatMoney, formatTime, newKey, pick, showError, showIdFromPath } from "/web/common.js";
import { play } from "/web/media.js";
import { clock, momentsAt, playReplay } from "/web/replay.js";
import { io } from "/vendor/socket.io.esm.min.js";

const ACTIVE_REPORT_MS = 5 * 60_000; // an interaction is reported at most this often
const MAX_MESSAGES = 100;
const LOW_STOCK = 5;

const $ = (id) => document.getElementById(id);

// --- embedded on a brand's page (web/embed.js) ------------------------------------------------
// The page then runs in an iframe of another origin: it tells that page what the viewer does
// (postMessage to the origin embed.js named, nobody else), uses a guest token rather than a
// cookie the browser may block, and leaves navigation and, with cart=host, the cart to it.
const query = new URLSearchParams(window.location.search);
const EMBED = query.get("embed") === "1" && window.parent !== window;
const PARENT = (() => {
  try { return EMBED ? new URL(query.get("parent")).origin : null; } catch { return null; }
})();
const HOST_CART = EMBED && query.get("cart") === "host";
const GUEST_KEY = "showroom_guest_token";

function tell(type, detail) {
  if (PARENT) window.parent.postMessage({ source: "showroom", type: `showroom:${type}`, detail: { show_id: show?.id, ...detail } }, PARENT);
}

function cardDetail(product) {
  return { sku: product.sku, title: pick(product.title, locale), price: product.price, image_url: product.image_url ?? null };
}
const WORDS = {
  "zh-HK": {
    video: { connecting: "連線中…", playing: "", waiting: "主持人即將開始", retrying: "重新連線中…", ended: "直播已結束", host_reconnecting: "主持人重新連線中…", scheduled: "直播即將開始" },
    state: { scheduled: "即將開始", live: "直播中", ended: "已結束", cancelled: "已取消", replay: "重溫" },
    chapters: "商品時刻", chapter: (t, title) => `${t} ${title}`,
    points: (n) => `${n} 積分`, about: "節目", products: "直播商品", starts: "開始時間", host: "主持", video_: "直播",
    left: (n) => `只剩 ${n} 件`, soldOut: "售罄", viewers: (n) => `${n} 人觀看`, cart: "購物車",
    chat: "聊天", say: "留言…", send: "發送", heart: "送心", hearts: (n) => `${n} ♥`,
    endsIn: (t) => `限時優惠 ${t}`, buyNow: "立即購買", addToCart: "加入購物車", added: "已加入購物車", close: "關閉",
    details: "你的資料", name: "姓名", phone: "電話", payment: "付款方式", payLater: "稍後付款", cod: "貨到付款",
    place: "確認訂單", placed: "訂單已確認，多謝！", orderNo: "訂單編號", total: "合計", holdUntil: (t) => `已為你保留至 ${t}`,
    cartEmpty: "購物車是空的", checkout: "結帳", unavailable: "存貨不足", qty: (n) => `× ${n}`, toShop: "正在前往商店…",
    qa: "問答", ask: "向主持人提問…", askSend: "提問", noQuestions: "未有問題，快啲問吖！", answering: "正在回答", answered: "已回答",
    upvote: (text) => `支持這個問題：${text}`, votes: (n) => `${n} 票`,
    you: "你", hostBadge: "主持", share: "分享直播", shared: "連結已複製", shareText: (title) => `一齊睇直播：${title}`,
    claimOk: (title, n) => `已把「${title}」加入你的購物車（${n} 件）`,
    claim: { nothing_pinned: "現在沒有可以 +1 的商品", ambiguous: "你想要哪一款？", no_match: "找不到這件商品，請選擇：", sold_out: "已售罄", limit: "你的購物車已達上限", show_not_live: "直播開始後才可以 +1" },
    errors: { rate_limited: "發送太快，請稍等", slow_mode: (s) => `慢速模式：請等 ${s} 秒`, muted: "你已被禁言", banned: "你已被移出直播", blocked_word: "留言含有不當字詞", invalid: "留言太長或是空的", conflict: "直播已結束", not_joined: "尚未連線", show_closed: "直播已結束", unauthorized: "登入已失效，請重新開啟", other: "未能發送，請再試" },
  },
  "zh-CN": {
    video: { connecting: "连接中…", playing: "", waiting: "主持人即将开始", retrying: "重新连接中…", ended: "直播已结束", host_reconnecting: "主持人重新连接中…", scheduled: "直播即将开始" },
    state: { scheduled: "即将开始", live: "直播中", ended: "已结束", cancelled: "已取消", replay: "回放" },
    chapters: "商品时刻", chapter: (t, title) => `${t} ${title}`,
    points: (n) => `${n} 积分`, about: "节目", products: "直播商品", starts: "开始时间", host: "主持", video_: "直播",
    left: (n) => `仅剩 ${n} 件`, soldOut: "售罄", viewers: (n) => `${n} 人观看`, cart: "购物车",
    chat: "聊天", say: "说点什么…", send: "发送", heart: "点赞", hearts: (n) => `${n} ♥`,
    endsIn: (t) => `限时优惠 ${t}`, buyNow: "立即购买", addToCart: "加入购物车", added: "已加入购物车", close: "关闭",
    details: "你的信息", name: "姓名", phone: "电话", payment: "付款方式", payLater: "稍后付款", cod: "货到付款",
    place: "确认订单", placed: "订单已确认，谢谢！", orderNo: "订单号", total: "合计", holdUntil: (t) => `已为你保留至 ${t}`,
    cartEmpty: "购物车是空的", checkout: "结算", unavailable: "库存不足", qty: (n) => `× ${n}`, toShop: "正在前往商店…",
    qa: "问答", ask: "向主播提问…", askSend: "提问", noQuestions: "还没有问题，来问一个吧！", answering: "正在回答", answered: "已回答",
    upvote: (text) => `支持这个问题：${text}`, votes: (n) => `${n} 票`,
    you: "你", hostBadge: "主播", share: "分享直播", shared: "链接已复制", shareText: (title) => `一起看直播：${title}`,
    claimOk: (title, n) => `已把“${title}”加入你的购物车（${n} 件）`,
    claim: { nothing_pinned: "现在没有可以 +1 的商品", ambiguous: "你想要哪一款？", no_match: "找不到这件商品，请选择：", sold_out: "已售罄", limit: "你的购物车已达上限", show_not_live: "直播开始后才可以 +1" },
    errors: { rate_limited: "发送太快，请稍等", slow_mode: (s) => `慢速模式：请等 ${s} 秒`, muted: "你已被禁言", banned: "你已被移出直播间", blocked_word: "留言含有不当词语", invalid: "留言太长或为空", conflict: "直播已结束", not_joined: "尚未连接", show_closed: "直播已结束", unauthorized: "登录已失效，请重新打开", other: "发送失败，请重试" },
  },
  en: {
    video: { connecting: "Connecting…", playing: "", waiting: "The host is about to start", retrying: "Reconnecting…", ended: "The live has ended", host_reconnecting: "The host is reconnecting…", scheduled: "The live starts soon" },
    state: { scheduled: "Coming up", live: "Live", ended: "Ended", cancelled: "Cancelled", replay: "Replay" },
    chapters: "Products in this video", chapter: (t, title) => `${t} ${title}`,
    points: (n) => `${n} points`, about: "Show", products: "Products in this live", starts: "Starts", host: "Host", video_: "Live video",
    left: (n) => `Only ${n} left`, soldOut: "Sold out", viewers: (n) => `${n} watching`, cart: "Cart",
    chat: "Chat", say: "Say something…", send: "Send", heart: "Send a heart", hearts: (n) => `${n} ♥`,
    endsIn: (t) => `Flash price · ${t}`, buyNow: "Buy now", addToCart: "Add to cart", added: "Added to your cart", close: "Close",
    details: "Your details", name: "Name", phone: "Phone", payment: "Payment", payLater: "Pay later", cod: "Cash on delivery",
    place: "Place order", placed: "Order placed. Thank you!", orderNo: "Order", total: "Total", holdUntil: (t) => `Held for you until ${t}`,
    cartEmpty: "Your cart is empty", checkout: "Check out", unavailable: "Not enough stock", qty: (n) => `× ${n}`, toShop: "Taking you to the shop…",
    qa: "Q&A", ask: "Ask the host…", askSend: "Ask", noQuestions: "No questions yet: ask the first one!", answering: "Answering now", answered: "Answered",
    upvote: (text) => `Upvote: ${text}`, votes: (n) => `${n} ${n === 1 ? "vote" : "votes"}`,
    you: "You", hostBadge: "Host", share: "Share this live", shared: "Link copied", shareText: (title) => `Watch live: ${title}`,
    claimOk: (title, n) => `${title} is in your cart (${n})`,
    claim: { nothing_pinned: "Nothing to +1 right now", ambiguous: "Which one?", no_match: "Which product? Choose:", sold_out: "Sold out", limit: "Your cart already holds the most allowed", show_not_live: "+1 opens when the show is live" },
    errors: { rate_limited: "You are sending too fast: wait a moment", slow_mode: (s) => `Slow mode: wait ${s} s`, muted: "You have been muted", banned: "You were removed from this live", blocked_word: "That message has a word that is not allowed", invalid: "The message is empty or too long", conflict: "The live has ended", not_joined: "Not connected yet", show_closed: "The live has ended", unauthorized: "Your sign-in has expired: open the page again", other: "Could not send: try again" },
  },
};

// --- page state -----------------------------------------------------------------------------
let show = null;
let words = WORDS["zh-HK"];
let locale = "zh-HK";
let token = null;
let socket = null;
let player = null;
let onPlayerState = () => {}; // the watch-time report listens (its WHEP session may change)
let you = null; // your author id in chat
let pinned = []; // ProductCard[] in pin order
let hostStream = "publishing";
let connection = "connecting";
const totals = {};
const counted = new Set(); // product:seen steps already sent
let sheetSku = null;
let replaying = false; // the show ended and its replay plays

function errorText(error) {
  const text = words.errors[error?.code];
  if (typeof text === "function") return text(Math.ceil((error.retry_after_ms ?? 1000) / 1000));
  return text ?? error?.message ?? words.errors.other;
}

function flash(target, text) {
  target.textContent = text;
  target.hidden = !text;
}

// --- video ----------------------------------------------------------------------------------
function renderPlayerState() {
  const status = $("player-state");
  if (replaying) {
    status.textContent = "";
    status.dataset.state = "replay";
    return;
  }
  if (show.state !== "live") status.textContent = show.state === "scheduled" ? words.video.scheduled : words.video.ended;
  else if (hostStream === "host_reconnecting") status.textContent = words.video.host_reconnecting;
  // Nothing to play until the host broadcasts: say so rather than "reconnecting".
  else if ((hostStream === "idle" || hostStream === "stopped") && connection !== "playing") status.textContent = words.video.waiting;
  else status.textContent = words.video[connection] ?? "";
  status.dataset.state = connection;
}

const WEBRTC_ATTEMPTS = 3; // failed WHEP connections in a row before HLS takes over

function startPlayer() {
  if (player || show.state !== "live") return;
  if (!window.RTCPeerConnection) {
    startLiveHls().catch((error) => showError($("error"), error));
    return;
  }
  document.body.dataset.transport = "webrtc";
  player = play(show.id, $("player"), (state) => {
    connection = state;
    renderPlayerState();
    onPlayerState();
  }, (failures) => {
    // WebRTC cannot get through here (a network that blocks UDP, say): HLS over HTTPS can.
    if (failures < WEBRTC_ATTEMPTS || document.body.dataset.transport !== "webrtc") return;
    player?.stop();
    player = null;
    startLiveHls().catch((error) => showError($("error"), error));
  });
}

// The show's live HLS: a few seconds behind WebRTC, but it plays wherever HTTP does. Watch
// time is credited only to WebRTC sessions the server relays (docs/realtime.md).
async function startLiveHls() {
  document.body.dataset.transport = "hls";
  connection = "connecting";
  renderPlayerState();
  const video = $("player");
  video.addEventListener("playing", () => {
    connection = "playing";
    renderPlayerState();
    onPlayerState();
  });
  player = await playReplay(video, `/hls/${show.id}/index.m3u8`, 0, { live: true });
  player.session = () => null;
}

function setShowState(state) {
  show.state = state;
  $("state").textContent = words.state[state] ?? state;
  $("state").className = `state ${state}`;
  if (state === "live") startPlayer();
  if (state === "ended" || state === "cancelled") {
    player?.stop();
    connection = "ended";
    // Chat and hearts close with the show.
    for (const control of [...$("chat-form").elements, ...$("ask-form").elements, $("heart")]) control.disabled = true;
  }
  renderPlayerState();
}

function showPoints(balance) {
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

// --- the replay: the show's video after it ended, its products at their moments ---------------
async function startReplay() {
  const replay = await api(`/api/v1/shows/${show.id}/replay`, { token });
  if (!replay.ready) return;
  replaying = true;
  document.body.dataset.replay = "1";
  $("state").textContent = words.state.replay;
  $("state").className = "state replay";
  renderPlayerState();
  const video = $("player");
  if (replay.poster_url) video.poster = replay.poster_url;
  const moments = replay.moments;
  const startAt = Number(query.get("t"));
  player = await playReplay(video, replay.playlist_url, Number.isFinite(startAt) && startAt > 0 ? startAt : 0);
  let shown = null;
  const follow = () => {
    const now = momentsAt(moments, video.currentTime);
    const key = now.map((m) => m.sku).join(" ");
    if (key === shown) return;
    shown = key;
    setPinned(now.map((m) => ({ ...m, flash_ends_at: null })));
    document.body.dataset.cards = key;
  };
  video.addEventListener("timeupdate", follow);
  video.addEventListener("seeked", follow);
  follow();
  // Chapters: a product's first moment, to jump to.
  const firsts = moments.filter((m, i) => moments.findIndex((o) => o.sku === m.sku) === i);
  $("chapters").replaceChildren(...firsts.map((m) => el("li", {},
    el("button", { type: "button", class: "chapter secondary", "data-sku": m.sku, "data-at": m.at_s,
      onclick: () => { video.currentTime = m.at_s; video.play().catch(() => {}); } },
    el("span", { class: "at" }, clock(m.at_s)), " ", pick(m.title, locale)))));
  $("chapters-nav").hidden = firsts.length === 0;
  // The show's questions stay with its replay.
  const asked = await api(`/api/v1/shows/${show.id}/questions?state=answering,answered,open`, { token });
  setQuestions(asked.items, []);
}

// --- pinned product cards ---------------------------------------------------------------------
function stockBadge(product) {
  if (product.stock === 0) return el("span", { class: "badge out" }, words.soldOut);
  if (product.stock <= LOW_STOCK) return el("span", { class: "badge" }, words.left(product.stock));
  return null;
}

function prices(product) {
  return el("span", { class: "prices" },
    el("span", { class: "price" }, formatMoney(product.price, locale)),
    product.compare_at_price ? el("s", { class: "was" }, formatMoney(product.compare_at_price, locale)) : null);
}

function countdown(product) {
  if (!product.flash_ends_at) return null;
  const node = el("span", { class: "countdown", "data-ends": product.flash_ends_at });
  tick(node);
  return node;
}

function tick(node) {
  const left = Math.max(0, Math.round((Date.parse(node.dataset.ends) - Date.now()) / 1000));
  const h = Math.floor(left / 3600);
  const mm = String(Math.floor((left % 3600) / 60)).padStart(2, "0");
  const ss = String(left % 60).padStart(2, "0");
  node.textContent = words.endsIn(h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`);
  return left;
}

let refreshing = false;
function tickAll() {
  let over = false;
  for (const node of document.querySelectorAll("[data-ends]")) if (tick(node) === 0) over = true;
  // The flash price ended: read the pins again for the usual price.
  if (over && !refreshing) {
    refreshing = true;
    api(`/api/v1/shows/${show.id}/pins`, { token })
      .then((page) => setPinned(page.products))
      .catch(() => {})
      .finally(() => setTimeout(() => { refreshing = false; }, 5000));
  }
}

function seen(sku, step) {
  const key = `${step}:${sku}`;
  if (!socket?.connected || counted.has(key)) return;
  counted.add(key);
  socket.emit("product:seen", { sku, step });
}

function cardNode(product) {
  const title = pick(product.title, locale);
  return el("li", { class: `pin${product.stock === 0 ? " sold-out" : ""}`, "data-sku": product.sku },
    el("button", { type: "button", class: "pin-open", "aria-haspopup": "dialog", onclick: () => openSheet(product.sku) },
      product.image_url ? el("img", { src: product.image_url, alt: "", loading: "lazy" }) : el("span", { class: "noimg" }),
      el("span", { class: "body" },
        el("span", { class: "title" }, title),
        prices(product),
        stockBadge(product),
        countdown(product))));
}

function setPinned(products) {
  pinned = products;
  $("pinned").replaceChildren(...pinned.map(cardNode));
  for (const product of pinned) seen(product.sku, "card_shown");
  if (sheetSku && $("sheet").open && !$("sheet").dataset.busy) renderSheetProduct();
}

function setStock(stock) {
  let changed = false;
  for (const product of pinned) {
    if (product.sku in stock && product.stock !== stock[product.sku]) {
      product.stock = stock[product.sku];
      changed = true;
    }
  }
  if (changed) setPinned(pinned);
}

// --- the detail sheet: buy now, add to cart ----------------------------------------------------
function openSheet(sku) {
  sheetSku = sku;
  delete $("sheet").dataset.busy;
  renderSheetProduct();
  if (!$("sheet").open) $("sheet").showModal();
  seen(sku, "card_opened");
  const product = pinned.find((p) => p.sku === sku);
  if (product) tell("product_opened", cardDetail(product));
}

function renderSheetProduct() {
  const product = pinned.find((p) => p.sku === sheetSku);
  if (!product) {
    $("sheet-body").replaceChildren(el("p", { class: "muted" }, words.soldOut));
    return;
  }
  const status = el("p", { class: "status", role: "status", "aria-live": "polite" });
  const soldOut = product.stock === 0;
  const buy = el("button", { type: "button", id: "buy-now", disabled: soldOut, onclick: () => guard(buy, status, () => buyNow(product.sku)) }, words.buyNow);
  const add = el("button", { type: "button", id: "add-to-cart", class: "secondary", disabled: soldOut, onclick: () => guard(add, status, () => addToCart(product.sku, status)) }, words.addToCart);
  $("sheet-body").replaceChildren(
    product.image_url ? el("img", { class: "sheet-img", src: product.image_url, alt: "" }) : null,
    el("h2", { id: "sheet-title" }, pick(product.title, locale)),
    prices(product),
    stockBadge(product),
    countdown(product),
    el("div", { class: "actions" }, buy, add),
    status);
}

async function guard(button, status, work) {
  button.disabled = true;
  status.classList.remove("error");
  try {
    await work();
  } catch (error) {
    status.classList.add("error");
    showError(status, error);
  } finally {
    button.disabled = false;
  }
}

async function buyNow(sku) {
  const items = [{ sku, quantity: 1 }];
  if (HOST_CART) return toHostCart(sku, "buy_now");
  if (show.checkout_mode === "handoff") return handoff({ items });
  $("sheet").dataset.busy = "1"; // live price updates must not replace the form being filled in
  const order = await api("/api/v1/checkouts", {
    token, method: "POST", json: { show_id: show.id, items }, headers: { "Idempotency-Key": newKey() },
  });
  $("sheet-body").replaceChildren(confirmForm(order));
  $("confirm-name").focus();
}

async function handoff(json) {
  const answer = await api(`/api/v1/shows/${show.id}/handoff`, { token, method: "POST", json });
  flash($("player-state"), words.toShop);
  // Embedded, the brand's page goes to its own cart (the iframe would only navigate itself).
  if (EMBED) tell("handoff", { url: answer.url });
  else window.location.assign(answer.url);
}

// cart=host: the brand's page keeps the cart; the pin's product goes to it as a message.
function toHostCart(sku, type) {
  const product = pinned.find((p) => p.sku === sku);
  tell(type, { ...(product ? cardDetail(product) : { sku }), quantity: 1, cart: "host" });
  flash($("player-state"), words.added);
}

async function addToCart(sku, status) {
  if (HOST_CART) {
    toHostCart(sku, "add_to_cart");
  } else {
    setCart(await api("/api/v1/cart/items", { token, method: "POST", json: { sku, quantity: 1, show_id: show.id } }));
    const product = pinned.find((p) => p.sku === sku);
    tell("add_to_cart", { ...(product ? cardDetail(product) : { sku }), quantity: 1, cart: "showroom" });
  }
  status.textContent = words.added;
}

function orderLines(order) {
  return el("ul", { class: "lines" }, order.lines.map((line) =>
    el("li", {}, el("span", {}, `${pick(line.title, locale)} ${words.qty(line.quantity)}`),
      el("span", { class: "price" }, formatMoney(line.unit_price, locale)))));
}

function confirmForm(order) {
  const status = el("p", { class: "status", role: "status", "aria-live": "polite" });
  const field = (id, label, attrs) => el("div", {}, el("label", { for: id }, label), el("input", { id, ...attrs }));
  const radio = (value, label, checked) => el("label", { class: "choice" },
    el("input", { type: "radio", name: "payment", value, checked }), ` ${label}`);
  const submit = el("button", { type: "submit", id: "confirm-submit" }, words.place);
  const form = el("form", { class: "confirm", id: "confirm-form" },
    el("h2", { id: "sheet-title" }, words.details),
    orderLines(order),
    el("p", {}, `${words.total}: `, el("strong", {}, formatMoney(order.total, locale))),
    el("p", { class: "muted" }, words.holdUntil(formatTime(order.reserved_until, locale))),
    field("confirm-name", words.name, { required: true, maxlength: 100, autocomplete: "name" }),
    field("confirm-phone", words.phone, { type: "tel", minlength: 3, maxlength: 32, autocomplete: "tel", inputmode: "tel" }),
    el("fieldset", {}, el("legend", {}, words.payment), radio("pay_later", words.payLater, true), radio("cash_on_delivery", words.cod, false)),
    submit, status);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    guard(submit, status, async () => {
      const phone = form.querySelector("#confirm-phone").value.trim();
      const placed = await api(`/api/v1/orders/${order.id}/confirm`, {
        token, method: "POST",
        json: {
          contact: { name: form.querySelector("#confirm-name").value.trim(), ...(phone ? { phone } : {}) },
          payment_method: form.querySelector("input[name=payment]:checked").value,
        },
      });
      tell("order_placed", { order_id: placed.id, total: placed.total });
      form.replaceWith(el("div", { class: "placed", id: "order-placed", role: "status", "data-order": placed.id, "data-status": placed.status },
        el("h2", { id: "sheet-title" }, words.placed),
        orderLines(placed),
        el("p", {}, `${words.total}: `, el("strong", {}, formatMoney(placed.total, locale))),
        el("p", { class: "muted" }, `${words.orderNo}: ${placed.id.slice(0, 8).toUpperCase()}`)));
    });
  });
  return form;
}

// --- the cart -------------------------------------------------------------------------------
function setCart(cart) {
  $("cart-count").textContent = String(cart.count);
  $("cart-button").setAttribute("aria-label", `${words.cart}: ${cart.count}`);
  if ($("cart").open && !$("cart").dataset.busy) renderCart(cart);
}

async function refreshCart() {
  setCart(await api("/api/v1/cart", { token }));
}

function renderCart(cart) {
  const status = el("p", { class: "status", role: "status", "aria-live": "polite" });
  const checkout = el("button", { type: "button", id: "cart-checkout", disabled: cart.items.length === 0, onclick: () => guard(checkout, status, async () => {
    if (show.checkout_mode === "handoff") return handoff({});
    $("cart").dataset.busy = "1";
    const order = await api("/api/v1/cart/checkout", { token, method: "POST", json: { show_id: show.id }, headers: { "Idempotency-Key": newKey() } });
    $("cart-body").replaceChildren(confirmForm(order));
    refreshCart().catch(() => {});
  }) }, words.checkout);
  $("cart-body").replaceChildren(
    el("h2", { id: "cart-title" }, words.cart),
    cart.items.length === 0 ? el("p", { class: "muted" }, words.cartEmpty) : el("ul", { class: "lines" }, cart.items.map((line) =>
      el("li", { "data-sku": line.sku },
        el("span", {}, `${pick(line.title, locale)} ${words.qty(line.quantity)}`, line.available ? null : el("span", { class: "badge out" }, ` ${words.unavailable}`)),
        el("span", { class: "price" }, formatMoney(line.line_total, locale))))),
    cart.total ? el("p", {}, `${words.total}: `, el("strong", {}, formatMoney(cart.total, locale))) : null,
    checkout, status);
}

async function openCart() {
  delete $("cart").dataset.busy;
  renderCart(await api("/api/v1/cart", { token }));
  if (!$("cart").open) $("cart").showModal();
}

// --- chat -----------------------------------------------------------------------------------
function messageNode(message) {
  const mine = message.author.id === you;
  const staff = message.author.role === "host" || message.author.role === "admin";
  return el("li", { class: `message${mine ? " mine" : ""}${staff ? " staff" : ""}`, "data-id": message.id, "data-seq": message.seq },
    el("span", { class: "author" }, mine ? words.you : message.author.name),
    staff ? el("span", { class: "role" }, words.hostBadge) : null,
    " ",
    el("span", { class: "text" }, message.text));
}

function addMessage(message) {
  const list = $("messages");
  if (list.querySelector(`[data-id="${CSS.escape(message.id)}"]`)) return;
  const stick = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  // Keep seq order even if an ack and a frame race.
  const after = [...list.children].find((li) => Number(li.dataset.seq) > message.seq);
  list.insertBefore(messageNode(message), after ?? null);
  while (list.children.length > MAX_MESSAGES) list.firstElementChild.remove();
  if (stick) list.scrollTop = list.scrollHeight;
}

function removeMessage(id) {
  $("messages").querySelector(`[data-id="${CSS.escape(id)}"]`)?.remove();
}

function showClaim(claim) {
  const box = $("claim");
  box.className = `claim${claim.ok ? " ok" : ""}`;
  box.dataset.code = claim.ok ? "ok" : claim.code;
  if (claim.ok) {
    box.replaceChildren(words.claimOk(pick(claim.title, locale), claim.cart_quantity));
    refreshCart().catch(() => {});
  } else {
    const choices = (claim.choices ?? []).map((choice) => el("button", { type: "button", class: "secondary choice", "data-sku": choice.sku,
      onclick: () => sendChat(`${show.claim_keyword || "+1"} ${choice.sku}`) }, pick(choice.title, locale) || choice.sku));
    box.replaceChildren(el("span", {}, words.claim[claim.code] ?? claim.message), choices.length ? el("div", { class: "choices" }, choices) : null);
  }
  box.hidden = false;
}

// An event with an ack within 10 s: the ack, or a failed one when none came. A refusal is
// shown in `errorBox` (with its code, for tests and styles); answers the ack or null.
async function emitAck(event, payload, errorBox) {
  let ack;
  try {
    ack = await socket.timeout(10_000).emitWithAck(event, payload);
  } catch {
    ack = { ok: false, error: { code: "other" } };
  }
  if (ack.ok) return ack;
  flash(errorBox, errorText(ack.error));
  errorBox.dataset.code = ack.error.code;
  return null;
}

async function sendChat(text) {
  const errorBox = $("chat-error");
  errorBox.hidden = true;
  if (!socket) return;
  const ack = await emitAck("chat:send", { text }, errorBox);
  if (!ack) return false;
  addMessage(ack.message);
  if (ack.claim) showClaim(ack.claim);
  return true;
}

// --- Q&A: questions apart from chat, most votes first ----------------------------------------
const questions = new Map(); // id -> Question
const myVotes = new Set();

function setQuestions(list, votes) {
  questions.clear();
  myVotes.clear();
  for (const question of list) questions.set(question.id, question);
  for (const id of votes ?? []) myVotes.add(id);
  renderQuestions();
}

function upsertQuestion(question) {
  if (question.state === "dismissed") questions.delete(question.id);
  else questions.set(question.id, question);
  renderQuestions();
}

function questionNode(question) {
  const voted = myVotes.has(question.id);
  const mine = question.author.id === you;
  const vote = el("button", {
    type: "button", class: `vote${voted ? " voted" : ""}`, "aria-pressed": String(voted),
    "aria-label": words.upvote(question.text), disabled: question.state === "answered" || !socket,
    onclick: () => voteQuestion(question.id, !voted, vote),
  }, el("span", { "aria-hidden": "true" }, "▲"), " ", el("span", { class: "n" }, String(question.votes)));
  const badge = question.state === "answering" || question.state === "answered"
    ? el("span", { class: `badge ${question.state}` }, words[question.state]) : null;
  return el("li", { class: `question ${question.state}${mine ? " mine" : ""}`, "data-id": question.id, "data-state": question.state, "data-votes": question.votes },
    vote,
    el("div", { class: "body" },
      el("span", { class: "author" }, mine ? words.you : question.author.name), " ", badge,
      el("p", { class: "text" }, question.text),
      el("span", { class: "visually-hidden" }, words.votes(question.votes))));
}

function renderQuestions() {
  const rank = { answering: 0, open: 1, answered: 2 };
  const list = [...questions.values()].sort((a, b) =>
    (rank[a.state] ?? 1) - (rank[b.state] ?? 1) || b.votes - a.votes || a.seq - b.seq);
  const waiting = list.filter((q) => q.state === "open" || q.state === "answering").length;
  $("qa-count").textContent = String(waiting);
  $("qa-count").hidden = waiting === 0;
  $("questions").replaceChildren(...(list.length ? list.map(questionNode) : [el("li", { class: "muted" }, words.noQuestions)]));
}

async function voteQuestion(id, vote, button) {
  if (!socket) return;
  button.disabled = true;
  const ack = await emitAck("question:vote", { question_id: id, vote }, $("ask-error"));
  if (!ack) {
    button.disabled = false;
    return;
  }
  if (ack.voted) myVotes.add(id);
  else myVotes.delete(id);
  upsertQuestion(ack.question);
}

async function askQuestion(text) {
  const errorBox = $("ask-error");
  errorBox.hidden = true;
  if (!socket) return false;
  const ack = await emitAck("question:ask", { text }, errorBox);
  if (!ack) return false;
  upsertQuestion(ack.question);
  return true;
}

function selectTab(name) {
  for (const [tab, panel] of [["tab-chat", "chat-panel"], ["tab-qa", "qa-panel"]]) {
    const on = tab === `tab-${name}`;
    $(tab).setAttribute("aria-selected", String(on));
    $(tab).tabIndex = on ? 0 : -1;
    $(panel).hidden = !on;
  }
}

// --- hearts ---------------------------------------------------------------------------------
let pendingHearts = 0;
let heartTimer = null;

function renderHearts() {
  $("heart-total").textContent = totals.heart ? words.hearts(totals.heart) : "";
}

function floatHeart() {
  if (matchMedia("(prefers-reduced-motion: reduce)").matches) return;
  const heart = el("span", { class: "float" }, "♥");
  heart.style.left = `${10 + Math.random() * 30}px`;
  heart.addEventListener("animationend", () => heart.remove());
  $("hearts-layer").append(heart);
}

function tapHeart() {
  floatHeart();
  pendingHearts += 1;
  // Taps are gathered: one react event at most every 300 ms (the server sums them).
  heartTimer ??= setTimeout(() => {
    const count = Math.min(pendingHearts, 20);
    pendingHearts = 0;
    heartTimer = null;
    socket?.emit("react", { kind: "heart", count });
  }, 300);
}

function mergeTotals(next) {
  for (const [kind, n] of Object.entries(next ?? {})) totals[kind] = Math.max(totals[kind] ?? 0, n);
  renderHearts();
}

// --- the live room --------------------------------------------------------------------------
function setViewers(n) {
  $("viewers").textContent = words.viewers(n);
  $("viewers").dataset.count = n;
  $("viewers").hidden = false;
}

function applyEvent(event) {
  switch (event.type) {
    case "chat.message": addMessage(event); break;
    case "chat.deleted": removeMessage(event.id); break;
    case "question": upsertQuestion(event); break;
    case "products.pinned": setPinned(event.products); break;
    case "products.stock": setStock(event.stock); break;
    case "reactions": mergeTotals(event.totals); break;
    case "presence": setViewers(event.viewers); break;
    case "show.state": setShowState(event.state); break;
    case "stream.status": hostStream = event.status; renderPlayerState(); break;
    default: break; // new event types are ignored
  }
}

function joinRoom() {
  socket = io("/live", { auth: token ? { token } : {}, transports: ["websocket"] });
  const video = $("player");
  // Watch time is credited by the server, on its own clock, from the media it relays: the
  // player only says when its state changes (docs/realtime.md, `watch:beat`).
  let joined = false;
  let reported = null; // the state last reported on this connection
  let activeReportedAt = -Infinity;
  const report = (active = false) => {
    if (!joined || show.state !== "live") return;
    const state = {
      playing: !video.paused && video.readyState >= 3, // not paused, ended or stalled
      visible: document.visibilityState === "visible",
      session: player?.session() ?? undefined, // the last path segment of the WHEP Location
    };
    const key = `${state.playing} ${state.visible} ${state.session}`;
    if (key === reported && !active) return;
    reported = key;
    if (active) activeReportedAt = Date.now();
    socket.emit("watch:beat", { ...state, active });
  };
  const interacted = () => {
    if (Date.now() - activeReportedAt >= ACTIVE_REPORT_MS) report(true);
  };
  const join = async () => {
    const ref = new URLSearchParams(window.location.search).get("ref");
    const ack = await socket.emitWithAck("join", ref ? { show_id: show.id, ref } : { show_id: show.id });
    if (!ack.ok) {
      held = null;
      flash($("chat-error"), errorText(ack.error));
      if (ack.error.code === "show_closed") setShowState("ended");
      return;
    }
    const snap = ack.snapshot;
    const early = held;
    held = null;
    you = snap.you.author_id;
    $("messages").replaceChildren();
    for (const message of snap.messages) addMessage(message);
    setQuestions(snap.questions, snap.my_votes);
    setPinned(snap.pinned_products);
    mergeTotals(snap.reactions);
    setViewers(snap.viewers);
    hostStream = snap.stream;
    if (snap.show.state !== show.state) setShowState(snap.show.state);
    else renderPlayerState();
    // Frames that came while joining: only what the snapshot does not hold yet.
    for (const event of early ?? []) if (event.seq === undefined || event.seq > snap.seq) applyEvent(event);
    document.body.dataset.joined = "1";
    if ($("chat-error").textContent === words.video.retrying) flash($("chat-error"), "");
    joined = true;
    reported = null; // a new connection (or a new join) starts with no state at the server
    report();
  };
  let held = null; // frames received while a join is under way
  const rejoin = () => {
    joined = false;
    held = [];
    join().catch(() => { held = null; });
  };
  socket.on("connect", rejoin);
  socket.on("gap", rejoin); // fell behind: start again from a snapshot
  socket.on("frame", (frame) => (held ? held.push(...frame.events) : frame.events.forEach(applyEvent)));
  socket.on("points", (event) => showPoints(event.balance));
  socket.on("removed", () => flash($("chat-error"), words.errors.banned));
  socket.on("connect_error", (error) => {
    if (error.data?.code === "unauthorized") flash($("chat-error"), words.errors.unauthorized);
  });
  socket.on("disconnect", (reason) => {
    joined = false;
    document.body.dataset.joined = "0";
    // The client reconnects on its own (then rejoins from a snapshot) unless we hung up.
    if (reason !== "io client disconnect") flash($("chat-error"), words.video.retrying);
  });
  for (const kind of ["pointerdown", "keydown", "scroll"]) addEventListener(kind, interacted, { passive: true });
  for (const kind of ["play", "pause", "playing", "waiting", "ended"]) video.addEventListener(kind, () => report());
  document.addEventListener("visibilitychange", () => report());
  onPlayerState = () => report(); // a reconnect brings a new WHEP session
}

function label() {
  document.documentElement.lang = locale;
  document.title = show.title;
  $("title").textContent = show.title;
  $("about-h").textContent = words.about;
  $("video-h").textContent = words.video_;
  $("products-h").textContent = words.products;
  $("chat-h").textContent = words.chat;
  $("chat-text").placeholder = words.say;
  $("chat-text-label").textContent = words.say;
  $("chat-send").textContent = words.send;
  $("tab-chat").textContent = words.chat;
  $("tab-qa-label").textContent = words.qa;
  $("ask-text").placeholder = words.ask;
  $("ask-text-label").textContent = words.ask;
  $("ask-send").textContent = words.askSend;
  $("heart-label").textContent = words.heart;
  $("cart-label").textContent = words.cart;
  $("share-label").textContent = words.share;
  $("chapters-h").textContent = words.chapters;
  $("share").title = words.share;
  $("share").hidden = show.state !== "live" && show.state !== "scheduled";
  for (const button of document.querySelectorAll("[data-close]")) {
    button.textContent = words.close;
    button.addEventListener("click", () => button.closest("dialog").close());
  }
  $("when").textContent = `${words.starts}: ${formatTime(show.scheduled_start, locale)}${show.host_name ? ` · ${words.host}: ${show.host_name}` : ""}`;
  $("description").textContent = show.description;
}

// An embedded guest keeps one guest token (storage is the embedding site's partition).
async function guestToken() {
  let kept = null;
  try { kept = localStorage.getItem(GUEST_KEY); } catch { /* storage blocked: a new guest each time */ }
  if (kept) {
    try {
      await api("/api/v1/me", { token: kept });
      return kept;
    } catch { /* expired or from another server: start again */ }
  }
  const started = await api("/api/v1/guest-session", { method: "POST" });
  try { localStorage.setItem(GUEST_KEY, started.token); } catch { /* as above */ }
  return started.token;
}

// --- sharing: a member's link earns referral points when it brings another viewer -----------
function shareUrl() {
  const url = new URL(`/watch/${show.id}`, window.location.origin);
  if (you) url.searchParams.set("ref", you); // the room credits the sharer (docs/realtime.md)
  return url.href;
}

async function share() {
  const url = shareUrl();
  $("share").dataset.url = url;
  if (navigator.share) {
    try {
      await navigator.share({ title: show.title, text: words.shareText(show.title), url });
      return;
    } catch (error) {
      if (error?.name === "AbortError") return; // the viewer closed the share sheet
    }
  }
  try {
    await navigator.clipboard.writeText(url);
    flash($("player-state"), words.shared);
  } catch {
    flash($("player-state"), url); // no clipboard: show the link to copy by hand
  }
}

async function main() {
  // A member arrives from the brand's app with its viewer token in the fragment (never sent
  // in a request line or logged); anyone else watches as a guest, with a guest cookie.
  token = new URLSearchParams(window.location.hash.slice(1)).get("token");
  if (token) history.replaceState(null, "", window.location.pathname + window.location.search);
  else if (EMBED) token = await guestToken();
  else await api("/api/v1/guest-session", { method: "POST" });
  if (EMBED) document.body.classList.add("embedded");
  show = await api(`/api/v1/shows/${showIdFromPath()}`, { token });
  locale = chooseLocale(show.locale);
  words = WORDS[locale];
  label();
  setShowState(show.state);
  hostStream = show.stream_status ?? "publishing";
  renderPlayerState();

  $("chat-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("chat-text");
    const text = input.value.trim();
    if (!text) return;
    if (await sendChat(text)) input.value = "";
  });
  $("ask-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("ask-text");
    const text = input.value.trim();
    if (!text) return;
    if (await askQuestion(text)) input.value = "";
  });
  $("tab-chat").addEventListener("click", () => selectTab("chat"));
  $("tab-qa").addEventListener("click", () => selectTab("qa"));
  // Arrow keys move between the two tabs (the WAI-ARIA tabs pattern).
  for (const id of ["tab-chat", "tab-qa"]) {
    $(id).addEventListener("keydown", (event) => {
      if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
      const next = id === "tab-chat" ? "qa" : "chat";
      selectTab(next);
      $(`tab-${next}`).focus();
    });
  }
  $("heart").addEventListener("click", tapHeart);
  $("share").addEventListener("click", () => share().catch((error) => showError($("error"), error)));
  $("cart-button").addEventListener("click", () => openCart().catch((error) => showError($("error"), error)));
  // A closed sheet keeps no form behind (the two dialogs' forms share ids).
  $("sheet").addEventListener("close", () => { sheetSku = null; $("sheet-body").replaceChildren(); });
  $("cart").addEventListener("close", () => $("cart-body").replaceChildren());
  setInterval(tickAll, 1000);

  if (show.state === "live" || show.state === "scheduled") joinRoom();
  else if (show.state === "ended") startReplay().catch((error) => showError($("error"), error));
  refreshCart().catch(() => {});
  tell("ready", { title: show.title, state: show.state, locale });
  if (token && !token.startsWith("shr_guest_")) showPoints((await api("/api/v1/me/points", { token })).balance);
}

main().catch((error) => showError($("error"), error));

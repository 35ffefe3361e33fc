// Studio page: the host opens their show, previews camera and microphone, goes live,
// broadcasts over WHIP, watches the stream's health and ends the show. In the live room the
// host reads and moderates chat, follows the "+1" claims and pins products from the rail.
// It speaks the show's language once the show is open (the browser's before that).
import { api, chooseLocale, currencyDecimals, el, formatMoney, formatTime, pick, showError, showIdFromPath, storedToken } from "/web/common.js";
import { publish } from "/web/media.js";
import { io } from "/vendor/socket.io.esm.min.js";

const $ = (id) => document.getElementById(id);

// Every word the page writes, in the three languages the pages speak (web/common.js LOCALES).
// English errors keep the server's own "code: message"; the Chinese ones say it in Chinese.
const WORDS = {
  "zh-HK": {
    page: "Showroom 直播控制台", studio: "直播控制台",
    tokenH: "主持人存取碼", tokenLabel: "貼上你的主持人存取碼（shr_host_…）", open: "開啟節目",
    cameraH: "鏡頭", cameraHint: "請先預覽；直播開始後，按「開始廣播」就會將呢部鏡頭同麥克風嘅畫面同聲音傳送畀觀眾。",
    camera: "鏡頭", microphone: "麥克風", preview: "開始預覽", cameraPreview: "鏡頭預覽",
    liveH: "直播", start: "開始直播", broadcast: "開始廣播", stop: "停止廣播", end: "結束直播",
    productsH: "商品", pinnedH: "現正置頂", nothingPinned: "未有置頂商品",
    searchLabel: "搜尋商品目錄（SKU 或名稱）", search: "搜尋", catalog: "商品目錄",
    flashPrice: "限時價（可選填，例如 99.00）", flashMinutes: "限時價維持（分鐘，可選填）",
    chatH: "聊天室", say: "向觀眾發訊息…", sayLabel: "向觀眾發訊息", send: "發送",
    questionsH: "觀眾提問", noQuestions: "未有問題", claimsH: "+1 落單",
    state: { scheduled: "即將開始", live: "直播中", ended: "已結束", cancelled: "已取消" },
    when: (t, host) => `預定 ${t} 開始${host ? ` · 主持：${host}` : ""}`,
    status: { idle: "未開始廣播", publishing: "廣播中", host_reconnecting: "連線中斷，重新連線中…", stopped: "已停止廣播" },
    viewers: (n) => `${n} 人觀看`,
    device: (kind, n) => `${kind === "videoinput" ? "鏡頭" : "麥克風"} ${n}`,
    role: { host: "主持", admin: "管理員" },
    delete: "刪除", deleteLabel: (name) => `刪除 ${name} 嘅留言`,
    mute: "禁言", muted: "已禁言", ban: "踢出", banned: "已踢出",
    sanctionLabel: (kind, name) => (kind === "mute" ? `喺今場直播禁言 ${name}` : `將 ${name} 踢出今場直播`),
    answerNow: "即刻回答", answered: "已回答", dismiss: "略過", answering: "正在回答",
    markLabel: (label, text) => `${label}：${text}`, votes: (n) => `${n} 票`,
    inCart: (n) => ` · 購物車內：${n} 件`, quote: ["「", "」"],
    soldOut: "已售罄", inStock: (n) => `存貨 ${n} 件`, flashUntil: (t) => ` · 限時價至 ${t}`,
    pin: "置頂", unpin: "取消置頂", setFlash: "設定限時價",
    badPrice: (example) => `限時價要寫成 ${example} 噉嘅格式`,
    errors: {
      not_joined: "未連線到直播室", rate_limited: "操作太快，請等一等再試", forbidden: "你冇權限做呢個操作",
      show_closed: "直播已經結束", unauthorized: "存取碼無效或者已經過期", not_pinned: "呢件商品未有置頂",
      internal: "伺服器出錯，請再試一次", conflict: (m) => `未能完成（${m}）`, invalid: (m) => `資料唔啱（${m}）`,
      not_found: (m) => `搵唔到（${m}）`,
    },
    http: { 401: "主持人存取碼無效或者已經過期", 403: "呢個存取碼唔可以開啟呢個節目", 404: "搵唔到呢個節目" },
  },
  "zh-CN": {
    page: "Showroom 直播中控台", studio: "直播中控台",
    tokenH: "主播密钥", tokenLabel: "粘贴你的主播密钥（shr_host_…）", open: "进入直播间",
    cameraH: "摄像头", cameraHint: "请先预览；开播后点击“开始推流”，就会把这个摄像头和麦克风的画面和声音推送给观众。",
    camera: "摄像头", microphone: "麦克风", preview: "开始预览", cameraPreview: "摄像头预览",
    liveH: "直播", start: "开始直播", broadcast: "开始推流", stop: "停止推流", end: "结束直播",
    productsH: "商品", pinnedH: "当前置顶", nothingPinned: "暂无置顶商品",
    searchLabel: "搜索商品库（SKU 或名称）", search: "搜索", catalog: "商品库",
    flashPrice: "限时价（选填，例如 99.00）", flashMinutes: "限时价持续（分钟，选填）",
    chatH: "聊天", say: "给观众发消息…", sayLabel: "给观众发消息", send: "发送",
    questionsH: "观众提问", noQuestions: "还没有问题", claimsH: "+1 下单",
    state: { scheduled: "即将开始", live: "直播中", ended: "已结束", cancelled: "已取消" },
    when: (t, host) => `计划 ${t} 开播${host ? ` · 主播：${host}` : ""}`,
    status: { idle: "尚未推流", publishing: "推流中", host_reconnecting: "连接中断，正在重连…", stopped: "已停止推流" },
    viewers: (n) => `${n} 人观看`,
    device: (kind, n) => `${kind === "videoinput" ? "摄像头" : "麦克风"} ${n}`,
    role: { host: "主播", admin: "管理员" },
    delete: "删除", deleteLabel: (name) => `删除 ${name} 的消息`,
    mute: "禁言", muted: "已禁言", ban: "踢出", banned: "已踢出",
    sanctionLabel: (kind, name) => (kind === "mute" ? `在本场直播禁言 ${name}` : `把 ${name} 踢出本场直播`),
    answerNow: "立即回答", answered: "已回答", dismiss: "忽略", answering: "正在回答",
    markLabel: (label, text) => `${label}：${text}`, votes: (n) => `${n} 票`,
    inCart: (n) => ` · 购物车内：${n} 件`, quote: ["“", "”"],
    soldOut: "已售罄", inStock: (n) => `库存 ${n} 件`, flashUntil: (t) => ` · 限时价至 ${t}`,
    pin: "置顶", unpin: "取消置顶", setFlash: "设置限时价",
    badPrice: (example) => `限时价的格式应为 ${example}`,
    errors: {
      not_joined: "尚未连接直播间", rate_limited: "操作太频繁，请稍后再试", forbidden: "你没有权限进行此操作",
      show_closed: "直播已结束", unauthorized: "密钥无效或已过期", not_pinned: "这件商品没有置顶",
      internal: "服务器出错，请重试", conflict: (m) => `无法完成（${m}）`, invalid: (m) => `数据有误（${m}）`,
      not_found: (m) => `找不到（${m}）`,
    },
    http: { 401: "主播密钥无效或已过期", 403: "这个密钥不能打开这场直播", 404: "找不到这场直播" },
  },
  en: {
    page: "Showroom studio", studio: "Studio",
    tokenH: "Host token", tokenLabel: "Paste your host token (shr_host_…)", open: "Open show",
    cameraH: "Camera", cameraHint: "Preview first; once the show is live, broadcast sends this camera and microphone to viewers.",
    camera: "Camera", microphone: "Microphone", preview: "Start preview", cameraPreview: "Camera preview",
    liveH: "Show", start: "Go live", broadcast: "Broadcast", stop: "Stop broadcast", end: "End show",
    productsH: "Products", pinnedH: "Pinned now", nothingPinned: "Nothing pinned",
    searchLabel: "Search the catalog (SKU or title)", search: "Search", catalog: "Catalog",
    flashPrice: "Flash price (optional, e.g. 99.00)", flashMinutes: "Flash lasts (minutes, optional)",
    chatH: "Chat", say: "Message to viewers…", sayLabel: "Message to viewers", send: "Send",
    questionsH: "Questions", noQuestions: "No questions yet", claimsH: "Claims (+1)",
    state: {}, // the state's own name
    when: (t, host) => `Scheduled ${t}${host ? ` · host ${host}` : ""}`,
    status: { idle: "Not broadcasting yet", publishing: "Broadcasting", host_reconnecting: "Connection lost: reconnecting…", stopped: "Broadcast stopped" },
    viewers: (n) => `${n} watching`,
    device: (kind, n) => `${kind === "videoinput" ? "Camera" : "Microphone"} ${n}`,
    role: {},
    delete: "Delete", deleteLabel: (name) => `Delete the message from ${name}`,
    mute: "Mute", muted: "Muted", ban: "Ban", banned: "Banned",
    sanctionLabel: (kind, name) => `${kind === "mute" ? "Mute" : "Ban"} ${name} in this show`,
    answerNow: "Answer now", answered: "Answered", dismiss: "Dismiss", answering: "Answering now",
    markLabel: (label, text) => `${label}: ${text}`, votes: (n) => `${n} votes`,
    inCart: (n) => ` · in cart: ${n}`, quote: ["“", "”"],
    soldOut: "sold out", inStock: (n) => `${n} in stock`, flashUntil: (t) => ` · flash until ${t}`,
    pin: "Pin", unpin: "Unpin", setFlash: "Set flash price",
    badPrice: (example) => `The flash price must look like ${example}`,
    errors: {},
    http: {},
  },
};
const showId = showIdFromPath();
const token = storedToken("showroom.host", $("token"));
const errorBox = $("error");
let stream = null;
let show = null;
let broadcast = null;
let socket = null;
let locale = chooseLocale(undefined); // the browser's language until the show says otherwise
let words = WORDS[locale];
let pinned = [];
let railItems = [];

// The page's own words, in the chosen language (the lists redraw theirs).
function label() {
  const set = (selector, text) => { document.querySelector(selector).textContent = text; };
  document.documentElement.lang = locale;
  document.title = show ? `${show.title} · ${words.studio}` : words.page;
  set("header.bar h1", words.studio);
  set("#token-h", words.tokenH);
  set("label[for='token']", words.tokenLabel);
  set("#load", words.open);
  set("#camera-h", words.cameraH);
  set("#camera-h + p", words.cameraHint);
  set("label[for='camera']", words.camera);
  set("label[for='microphone']", words.microphone);
  set("#preview", words.preview);
  $("video").setAttribute("aria-label", words.cameraPreview);
  set("#live-h", words.liveH);
  set("#start", words.start);
  set("#broadcast", words.broadcast);
  set("#stop", words.stop);
  set("#end", words.end);
  set("#products-h", words.productsH);
  set("#pinned-h", words.pinnedH);
  set("label[for='product-q']", words.searchLabel);
  set("#product-search button[type='submit']", words.search);
  set("label[for='flash-price']", words.flashPrice);
  set("label[for='flash-minutes']", words.flashMinutes);
  $("rail").setAttribute("aria-label", words.catalog);
  set("#chat-h", words.chatH);
  set("label[for='chat-text']", words.sayLabel);
  $("chat-text").placeholder = words.say;
  set("#chat-send", words.send);
  $("qa-h").firstChild.textContent = `${words.questionsH} `; // the count's span follows
  set("#claims-h", words.claimsH);
  if (show) {
    $("show-state").textContent = words.state[show.state] ?? show.state;
    $("when").textContent = words.when(formatTime(show.scheduled_start, locale), show.host_name);
  }
  if ($("viewers").dataset.count !== undefined) setViewers(Number($("viewers").dataset.count));
  setPinned(pinned);
  renderQuestions();
}

function render(loaded) {
  show = loaded;
  const before = locale;
  locale = chooseLocale(show.locale);
  words = WORDS[locale];
  $("show-title").textContent = show.title;
  $("show-state").className = `state ${show.state}`;
  label();
  $("start").disabled = show.state !== "scheduled";
  $("end").disabled = show.state !== "live";
  renderBroadcast();
  if (locale !== before) {
    // Unnamed devices ("Camera 1") and an open room's chat are drawn again in the new language.
    if (navigator.mediaDevices) listDevices().catch(() => {});
    rejoin?.();
  }
  if (show.state === "scheduled" || show.state === "live") connectRoom();
}

function renderBroadcast() {
  $("broadcast").disabled = !(show?.state === "live" && stream && !broadcast);
  $("stop").disabled = !broadcast;
}

async function pollHealth() {
  if (show?.state !== "live") return;
  const h = await api(`/api/v1/shows/${showId}/stream`);
  const size = h.width ? ` · ${h.width}×${h.height}` : "";
  const codec = h.video_codec ? ` · ${h.video_codec}` : "";
  $("health").textContent = h.status === "publishing"
    ? `${words.status.publishing}${codec}${size} · ${Math.round(h.bitrate_kbps)} kb/s · ${h.frame_rate} fps · ${words.viewers(h.viewers)}`
    : (words.status[h.status] ?? "");
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
    const said = words.http[error?.status];
    if (said) flash(errorBox, said);
    else showError(errorBox, error);
  }
}

const load = () => run(async () => {
  render(await api(`/api/v1/shows/${showId}`, { token: token() }));
  await Promise.all([loadClaims(), search("")]);
});
const act = (action) => run(async () =>
  render(await api(`/api/v1/shows/${showId}/${action}`, { token: token(), method: "POST" })));

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [kind, select] of [["videoinput", $("camera")], ["audioinput", $("microphone")]]) {
    const chosen = select.value;
    select.replaceChildren(...devices.filter((d) => d.kind === kind).map((d, i) => {
      const option = new Option(d.label || words.device(kind, i + 1), d.deviceId);
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

// --- the live room: chat with moderation, claims, pinned products ---------------------------

function flash(target, text) {
  target.textContent = text;
  target.hidden = !text;
}

function ackError(error) {
  const text = words.errors[error.code];
  if (typeof text === "function") return text(error.message);
  return text ?? `${error.code}: ${error.message}`;
}

let rejoin = null; // joins the room again once it is connected

function connectRoom() {
  if (socket) return;
  socket = io("/live", { auth: { token: token() }, transports: ["websocket"] });
  let held = null; // frames received while a join is under way
  const join = async () => {
    held = [];
    const ack = await socket.emitWithAck("join", { show_id: showId });
    const early = held;
    held = null;
    if (!ack.ok) return flash($("chat-error"), ackError(ack.error));
    flash($("chat-error"), "");
    $("messages").replaceChildren();
    for (const message of ack.snapshot.messages) addMessage(message);
    questions.clear();
    for (const question of ack.snapshot.questions) questions.set(question.id, question);
    renderQuestions();
    setPinned(ack.snapshot.pinned_products);
    setViewers(ack.snapshot.viewers);
    // Frames that came while joining: only what the snapshot does not hold yet.
    for (const event of early) if (event.seq === undefined || event.seq > ack.snapshot.seq) apply(event);
    document.body.dataset.joined = "1";
  };
  rejoin = () => join().catch(() => { held = null; });
  socket.on("connect", rejoin);
  socket.on("gap", rejoin);
  socket.on("connect_error", (error) => {
    const said = words.errors[error.data?.code];
    flash($("chat-error"), typeof said === "string" ? said : (error.data?.message ?? error.message));
  });
  socket.on("frame", (frame) => (held ? held.push(...frame.events) : frame.events.forEach(apply)));
}

function apply(event) {
  if (event.type === "chat.message") addMessage(event);
  else if (event.type === "chat.deleted") removeMessage(event.id);
  else if (event.type === "question") upsertQuestion(event);
  else if (event.type === "member.sanctioned") markSanctioned(event.author_id, event.kind, true);
  else if (event.type === "member.lifted") markSanctioned(event.author_id, event.kind, false);
  else if (event.type === "claim") addClaim(event, true);
  else if (event.type === "products.pinned") setPinned(event.products);
  else if (event.type === "products.stock") setStock(event.stock);
  else if (event.type === "presence") setViewers(event.viewers);
  else if (event.type === "show.state" && show) render({ ...show, state: event.state });
}

function setViewers(n) {
  $("viewers").textContent = words.viewers(n);
  $("viewers").dataset.count = n;
  $("viewers").hidden = false;
}

function messageNode(message) {
  const remove = el("button", { type: "button", class: "secondary small delete", "aria-label": words.deleteLabel(message.author.name),
    onclick: async () => {
      remove.disabled = true;
      const ack = await socket.emitWithAck("chat:delete", { message_id: message.id });
      if (ack.ok) removeMessage(message.id);
      else {
        remove.disabled = false;
        flash($("chat-error"), ackError(ack.error));
      }
    } }, words.delete);
  const audience = message.author.role === "viewer" || message.author.role === "guest";
  return el("li", { class: `message${message.author.role === "host" ? " staff" : ""}`, "data-id": message.id, "data-seq": message.seq, "data-author": message.author.id },
    el("span", { class: "author" }, message.author.name),
    audience ? null : el("span", { class: "role" }, words.role[message.author.role] ?? message.author.role),
    " ", el("span", { class: "text" }, message.text), " ", remove,
    audience ? sanction(message.author, "mute") : null,
    audience ? sanction(message.author, "ban") : null);
}

// Mute (can watch, not talk) or ban (removed from the room) an author for this show.
function sanction(author, kind) {
  const button = el("button", { type: "button", class: `secondary small ${kind}`, "aria-label": words.sanctionLabel(kind, author.name),
    onclick: async () => {
      button.disabled = true;
      const ack = await socket.emitWithAck(`member:${kind}`, { author_id: author.id });
      if (!ack.ok) {
        button.disabled = false;
        return flash($("chat-error"), ackError(ack.error));
      }
      flash($("chat-error"), "");
      markSanctioned(author.id, kind, true);
    } }, words[kind]);
  if (sanctioned.has(`${kind} ${author.id}`)) markButton(button, kind, true);
  return button;
}

const sanctioned = new Set(); // "mute a_…" / "ban a_…" seen in this session

function markButton(button, kind, on) {
  button.disabled = on;
  button.textContent = on ? (kind === "mute" ? words.muted : words.banned) : words[kind];
}

// Every message of that author shows it, whoever moderated (frames carry it to all hosts).
function markSanctioned(authorId, kind, on) {
  if (on) sanctioned.add(`${kind} ${authorId}`);
  else sanctioned.delete(`${kind} ${authorId}`);
  for (const button of $("messages").querySelectorAll(`[data-author="${CSS.escape(authorId)}"] button.${kind}`)) markButton(button, kind, on);
}

// --- Q&A: the host's queue, most votes first ------------------------------------------------
const questions = new Map(); // id -> Question (open or answering)

function upsertQuestion(question) {
  if (question.state === "answered" || question.state === "dismissed") questions.delete(question.id);
  else questions.set(question.id, question);
  renderQuestions();
}

function questionNode(question) {
  const mark = (state, label, secondary = true) => {
    const button = el("button", { type: "button", class: `${secondary ? "secondary " : ""}small`, "data-mark": state,
      "aria-label": words.markLabel(label, question.text),
      onclick: async () => {
        button.disabled = true;
        const ack = await socket.emitWithAck("question:mark", { question_id: question.id, state });
        if (!ack.ok) {
          button.disabled = false;
          return flash($("qa-error"), ackError(ack.error));
        }
        flash($("qa-error"), "");
        upsertQuestion(ack.question);
      } }, label);
    return button;
  };
  return el("li", { class: `question ${question.state}`, "data-id": question.id, "data-state": question.state, "data-votes": question.votes },
    el("span", { class: "vote", "aria-label": words.votes(question.votes) }, el("span", { "aria-hidden": "true" }, "▲"), " ", String(question.votes)),
    el("div", { class: "body" },
      el("span", { class: "author" }, question.author.name), " ",
      question.state === "answering" ? el("span", { class: "badge answering" }, words.answering) : null,
      el("p", { class: "text" }, question.text),
      el("div", { class: "actions" },
        question.state === "answering" ? null : mark("answering", words.answerNow, false),
        mark("answered", words.answered),
        mark("dismissed", words.dismiss))));
}

function renderQuestions() {
  const list = [...questions.values()].sort((a, b) =>
    (a.state === "answering" ? 0 : 1) - (b.state === "answering" ? 0 : 1) || b.votes - a.votes || a.seq - b.seq);
  $("qa-count").textContent = list.length ? `(${list.length})` : "";
  $("questions").replaceChildren(...(list.length ? list.map(questionNode) : [el("li", { class: "muted" }, words.noQuestions)]));
}

function addMessage(message) {
  const list = $("messages");
  if (list.querySelector(`[data-id="${CSS.escape(message.id)}"]`)) return;
  const stick = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const after = [...list.children].find((li) => Number(li.dataset.seq) > message.seq);
  list.insertBefore(messageNode(message), after ?? null);
  while (list.children.length > 200) list.firstElementChild.remove();
  if (stick) list.scrollTop = list.scrollHeight;
}

function removeMessage(id) {
  $("messages").querySelector(`[data-id="${CSS.escape(id)}"]`)?.remove();
}

$("chat-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("chat-text");
  const text = input.value.trim();
  if (!text || !socket) return;
  const ack = await socket.emitWithAck("chat:send", { text });
  if (!ack.ok) return flash($("chat-error"), ackError(ack.error));
  flash($("chat-error"), "");
  input.value = "";
  addMessage(ack.message);
});

// Claims feed: newest first.
function addClaim(claim, live) {
  const list = $("claims");
  if (list.querySelector(`[data-id="${CSS.escape(claim.id)}"]`)) return;
  const node = el("li", { class: "claim-row", "data-id": claim.id, "data-sku": claim.sku },
    el("strong", {}, claim.author_name), ` · ${claim.sku} `, el("span", {}, pick(claim.title, locale)),
    words.inCart(claim.cart_quantity), el("span", { class: "muted" }, ` · ${words.quote[0]}`, claim.text, `${words.quote[1]} · ${formatTime(claim.created_at, locale)}`));
  if (live) list.prepend(node);
  else list.append(node);
}

async function loadClaims() {
  const page = await api(`/api/v1/shows/${showId}/claims?limit=50`, { token: token() });
  $("claims").replaceChildren();
  for (const claim of page.items) addClaim(claim, false);
}

// Products: the pinned ones, and the catalog rail to pin from.
function stockText(product) {
  return product.stock === 0 ? words.soldOut : words.inStock(product.stock);
}

function setPinned(products) {
  pinned = products;
  const list = $("pinned");
  if (!pinned.length) list.replaceChildren(el("li", { class: "muted" }, words.nothingPinned));
  else list.replaceChildren(...pinned.map((product) => {
    const unpin = el("button", { type: "button", class: "secondary small", onclick: () => pinAction("product:unpin", { sku: product.sku }, unpin) }, words.unpin);
    // Pinning again with the flash fields filled in sets (or changes) the flash price.
    const flashButton = el("button", { type: "button", class: "secondary small flash", onclick: () => pin(product, flashButton) }, words.setFlash);
    return el("li", { class: "rail-item pinned", "data-sku": product.sku },
      el("span", { class: "title" }, pick(product.title, locale)), " ", el("span", { class: "muted" }, product.sku), " ",
      el("span", { class: "price" }, formatMoney(product.price, locale)),
      product.compare_at_price ? el("s", { class: "was" }, formatMoney(product.compare_at_price, locale)) : null,
      product.flash_ends_at ? el("span", { class: "muted" }, words.flashUntil(formatTime(product.flash_ends_at, locale))) : null,
      el("span", { class: "muted" }, ` · ${stockText(product)} `), el("span", { class: "buttons" }, flashButton, unpin));
  }));
  renderRail();
}

function setStock(stock) {
  for (const product of pinned) if (product.sku in stock) product.stock = stock[product.sku];
  setPinned(pinned);
}

// "99.5" in HKD -> 9950: parsed as text, never through a float.
function toMinor(text, currency) {
  const digits = currencyDecimals(currency);
  const match = /^(\d+)(?:\.(\d*))?$/.exec(text.trim());
  if (!match || (match[2] ?? "").length > digits) throw new Error(words.badPrice(digits ? "99.00" : "99"));
  return Number(match[1]) * 10 ** digits + Number((match[2] ?? "").padEnd(digits, "0") || 0);
}

async function pinAction(event, payload, button) {
  flash($("rail-error"), "");
  button.disabled = true;
  try {
    const ack = await socket.emitWithAck(event, payload);
    if (!ack.ok) return flash($("rail-error"), ackError(ack.error));
    setPinned(ack.products);
    // A flash price is for the product it was set on: the next pin starts without one.
    if (payload.flash_price) $("flash-price").value = $("flash-minutes").value = "";
  } catch (error) {
    flash($("rail-error"), error.message);
  } finally {
    button.disabled = false;
  }
}

function pin(product, button) {
  const payload = { sku: product.sku };
  try {
    const price = $("flash-price").value.trim();
    const minutes = Number($("flash-minutes").value);
    if (price) payload.flash_price = { amount_minor: toMinor(price, product.price.currency), currency: product.price.currency };
    if (price && minutes > 0) payload.flash_ends_at = new Date(Date.now() + minutes * 60_000).toISOString();
  } catch (error) {
    return flash($("rail-error"), error.message);
  }
  return pinAction("product:pin", payload, button);
}

function renderRail() {
  const live = new Map(pinned.map((p) => [p.sku, p]));
  $("rail").replaceChildren(...railItems.map((item) => {
    const isPinned = live.has(item.sku);
    const product = isPinned ? { ...item, stock: live.get(item.sku).stock } : item;
    const button = isPinned
      ? el("button", { type: "button", class: "secondary small", onclick: () => pinAction("product:unpin", { sku: product.sku }, button) }, words.unpin)
      : el("button", { type: "button", class: "small", disabled: !socket, onclick: () => pin(product, button) }, words.pin);
    return el("li", { class: `rail-item${isPinned ? " is-pinned" : ""}`, "data-sku": product.sku },
      product.image_url ? el("img", { src: product.image_url, alt: "", loading: "lazy" }) : null,
      el("span", { class: "title" }, pick(product.title, locale)), " ", el("span", { class: "muted" }, product.sku), " ",
      el("span", { class: "price" }, formatMoney(product.price, locale)),
      el("span", { class: "muted" }, ` · ${stockText(product)} `), button);
  }));
}

async function search(q) {
  const query = q ? `&q=${encodeURIComponent(q)}` : "";
  railItems = (await api(`/api/v1/products?limit=20${query}`, { token: token() })).items;
  renderRail();
}

$("product-search").addEventListener("submit", (event) => {
  event.preventDefault();
  run(() => search($("product-q").value.trim()));
});

label();
if (token()) load();

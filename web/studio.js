// Studio page: the host opens their show, previews camera and microphone, goes live,
// broadcasts over WHIP, watches the stream's health and ends the show. In the live room the
// host reads and moderates chat, follows the "+1" claims and pins products from the rail.
import { api, chooseLocale, currencyDecimals, el, formatMoney, formatTime, pick, showError, showIdFromPath, storedToken } from "/web/common.js";
import { publish } from "/web/media.js";
import { io } from "/vendor/socket.io.esm.min.js";

const $ = (id) => document.getElementById(id);
const showId = showIdFromPath();
const token = storedToken("showroom.host", $("token"));
const errorBox = $("error");
let stream = null;
let show = null;
let broadcast = null;
let socket = null;
let locale = "en";
let pinned = [];
let railItems = [];

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
  locale = chooseLocale(show.locale);
  if (show.state === "scheduled" || show.state === "live") connectRoom();
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

// --- the live room: chat with moderation, claims, pinned products ---------------------------

function flash(target, text) {
  target.textContent = text;
  target.hidden = !text;
}

const ackError = (error) => `${error.code}: ${error.message}`;

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
  const rejoin = () => join().catch(() => { held = null; });
  socket.on("connect", rejoin);
  socket.on("gap", rejoin);
  socket.on("connect_error", (error) => flash($("chat-error"), error.data?.message ?? error.message));
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
  $("viewers").textContent = `${n} watching`;
  $("viewers").dataset.count = n;
  $("viewers").hidden = false;
}

function messageNode(message) {
  const remove = el("button", { type: "button", class: "secondary small delete", "aria-label": `Delete the message from ${message.author.name}`,
    onclick: async () => {
      remove.disabled = true;
      const ack = await socket.emitWithAck("chat:delete", { message_id: message.id });
      if (ack.ok) removeMessage(message.id);
      else {
        remove.disabled = false;
        flash($("chat-error"), ackError(ack.error));
      }
    } }, "Delete");
  const audience = message.author.role === "viewer" || message.author.role === "guest";
  return el("li", { class: `message${message.author.role === "host" ? " staff" : ""}`, "data-id": message.id, "data-seq": message.seq, "data-author": message.author.id },
    el("span", { class: "author" }, message.author.name),
    audience ? null : el("span", { class: "role" }, message.author.role),
    " ", el("span", { class: "text" }, message.text), " ", remove,
    audience ? sanction(message.author, "mute", "Mute") : null,
    audience ? sanction(message.author, "ban", "Ban") : null);
}

// Mute (can watch, not talk) or ban (removed from the room) an author for this show.
function sanction(author, kind, label) {
  const button = el("button", { type: "button", class: `secondary small ${kind}`, "aria-label": `${label} ${author.name} in this show`,
    onclick: async () => {
      button.disabled = true;
      const ack = await socket.emitWithAck(`member:${kind}`, { author_id: author.id });
      if (!ack.ok) {
        button.disabled = false;
        return flash($("chat-error"), ackError(ack.error));
      }
      flash($("chat-error"), "");
      markSanctioned(author.id, kind, true);
    } }, label);
  if (sanctioned.has(`${kind} ${author.id}`)) markButton(button, kind, true);
  return button;
}

const sanctioned = new Set(); // "mute a_…" / "ban a_…" seen in this session

function markButton(button, kind, on) {
  button.disabled = on;
  button.textContent = on ? (kind === "mute" ? "Muted" : "Banned") : (kind === "mute" ? "Mute" : "Ban");
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
      "aria-label": `${label}: ${question.text}`,
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
    el("span", { class: "vote", "aria-label": `${question.votes} votes` }, el("span", { "aria-hidden": "true" }, "▲"), " ", String(question.votes)),
    el("div", { class: "body" },
      el("span", { class: "author" }, question.author.name), " ",
      question.state === "answering" ? el("span", { class: "badge answering" }, "Answering now") : null,
      el("p", { class: "text" }, question.text),
      el("div", { class: "actions" },
        question.state === "answering" ? null : mark("answering", "Answer now", false),
        mark("answered", "Answered"),
        mark("dismissed", "Dismiss"))));
}

function renderQuestions() {
  const list = [...questions.values()].sort((a, b) =>
    (a.state === "answering" ? 0 : 1) - (b.state === "answering" ? 0 : 1) || b.votes - a.votes || a.seq - b.seq);
  $("qa-count").textContent = list.length ? `(${list.length})` : "";
  $("questions").replaceChildren(...(list.length ? list.map(questionNode) : [el("li", { class: "muted" }, "No questions yet")]));
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
    ` · in cart: ${claim.cart_quantity}`, el("span", { class: "muted" }, ` · “`, claim.text, `” · ${formatTime(claim.created_at, locale)}`));
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
  return product.stock === 0 ? "sold out" : `${product.stock} in stock`;
}

function setPinned(products) {
  pinned = products;
  const list = $("pinned");
  if (!pinned.length) list.replaceChildren(el("li", { class: "muted" }, "Nothing pinned"));
  else list.replaceChildren(...pinned.map((product) => {
    const unpin = el("button", { type: "button", class: "secondary small", onclick: () => pinAction("product:unpin", { sku: product.sku }, unpin) }, "Unpin");
    // Pinning again with the flash fields filled in sets (or changes) the flash price.
    const flashButton = el("button", { type: "button", class: "secondary small flash", onclick: () => pin(product, flashButton) }, "Set flash price");
    return el("li", { class: "rail-item pinned", "data-sku": product.sku },
      el("span", { class: "title" }, pick(product.title, locale)), " ", el("span", { class: "muted" }, product.sku), " ",
      el("span", { class: "price" }, formatMoney(product.price, locale)),
      product.compare_at_price ? el("s", { class: "was" }, formatMoney(product.compare_at_price, locale)) : null,
      product.flash_ends_at ? el("span", { class: "muted" }, ` · flash until ${formatTime(product.flash_ends_at, locale)}`) : null,
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
  if (!match || (match[2] ?? "").length > digits) throw new Error(`The flash price must look like ${digits ? "99.00" : "99"}`);
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
      ? el("button", { type: "button", class: "secondary small", onclick: () => pinAction("product:unpin", { sku: product.sku }, button) }, "Unpin")
      : el("button", { type: "button", class: "small", disabled: !socket, onclick: () => pin(product, button) }, "Pin");
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

if (token()) load();

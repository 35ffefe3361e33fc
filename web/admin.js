// Admin page: shows and their lifecycle, scheduling, orders, members and their points, show
// analytics (figures, the retention chart, the sales funnel, CSV exports), the catalog and
// product import, and the webhook delivery log. Everything goes through the JSON API with
// the admin key pasted at the top; text from the API is always put in the page as text.
import uPlot from "/vendor/uPlot.esm.js";
import {
  api, chooseLocale, el, formatMoney, formatTime, newKey, pick, showError, storedToken, ApiError,
} from "/web/common.js";

const $ = (id) => document.getElementById(id);
const token = storedToken("showroom.admin", $("key"));
const errorBox = $("error");
const ACTIONS = { scheduled: ["start", "cancel"], live: ["end"], ended: [], cancelled: [] };
// Numbers, money and times follow the browser's language (zh-HK, zh-CN or en).
const LOCALE = chooseLocale();
const PAGE = 20;
const number = new Intl.NumberFormat(LOCALE);
const signed = new Intl.NumberFormat(LOCALE, { signDisplay: "exceptZero" });
const percent = new Intl.NumberFormat(LOCALE, { style: "percent", maximumFractionDigits: 1 });
const shortId = (id) => String(id).slice(0, 8);
const when = (iso) => (iso ? formatTime(iso, LOCALE) : "—");
const count = (n, one, many) => `${number.format(n)} ${n === 1 ? one : many}`;

async function guarded(work, box = errorBox) {
  box.hidden = true;
  try {
    await work();
  } catch (error) {
    showError(box, error);
  }
}

// A button that runs its work guarded, and is disabled meanwhile (no double submits).
function actionButton(label, work, box, { secondary = false, ariaLabel } = {}) {
  const button = el("button", { type: "button", class: secondary ? "secondary small" : "small", "aria-label": ariaLabel });
  button.textContent = label;
  button.addEventListener("click", async () => {
    button.disabled = true;
    await guarded(work, box);
    if (button.isConnected) button.disabled = false;
  });
  return button;
}

// --- shows --------------------------------------------------------------------------------

let shows = [];
const showTitle = (id) => shows.find((s) => s.id === id)?.title ?? (id ? shortId(id) : "—");

async function loadShows() {
  const page = await api("/api/v1/shows?limit=100", { token: token() });
  shows = page.items;
  $("shows").replaceChildren(
    ...page.items.map((show) =>
      el("tr", {},
        el("td", {}, show.title),
        el("td", {}, formatTime(show.scheduled_start, show.locale)),
        el("td", {}, el("span", { class: `state ${show.state}` }, show.state)),
        el("td", {}, el("a", { href: show.links.studio }, "Studio"), " · ", el("a", { href: show.links.watch }, "Watch")),
        el("td", {}, ...ACTIONS[show.state].map((action) =>
          el("button", { type: "button", class: action === "cancel" ? "secondary" : "",
            onclick: () => guarded(async () => {
              await api(`/api/v1/shows/${show.id}/${action}`, { token: token(), method: "POST" });
              await loadShows();
            }) }, action)))
      )
    )
  );
  fillShowSelect($("o-show"), "All shows");
  fillShowSelect($("a-show"), "Choose a show…");
  fillShowSelect($("ac-show"), "Choose a show…");
  fillShowSelect($("c-show"), "Choose a show…", (s) => s.state === "ended");
  if (!$("a-show").value) {
    // The show live now, else the one that started last.
    const started = shows.filter((s) => s.started_at).sort((a, b) => b.started_at.localeCompare(a.started_at));
    const chosen = shows.find((s) => s.state === "live") ?? started[0];
    if (chosen) $("a-show").value = chosen.id;
  }
}

function fillShowSelect(select, placeholder, wanted = () => true) {
  const kept = select.value;
  select.replaceChildren(
    el("option", { value: "" }, placeholder),
    ...shows.filter(wanted).map((s) => el("option", { value: s.id }, `${s.title} (${s.state}, ${formatTime(s.scheduled_start, LOCALE)})`))
  );
  if (shows.some((s) => s.id === kept)) select.value = kept;
}

// --- orders -------------------------------------------------------------------------------

const PAYMENT = { pay_later: "Pay later", cash_on_delivery: "Cash on delivery" };
const orders = { loaded: 0, total: 0, ticket: 0 };

async function loadOrders({ more = false } = {}) {
  const ticket = ++orders.ticket;
  const query = new URLSearchParams({ limit: String(PAGE), offset: String(more ? orders.loaded : 0) });
  if ($("o-status").value) query.set("status", $("o-status").value);
  if ($("o-show").value) query.set("show_id", $("o-show").value);
  const page = await api(`/api/v1/orders?${query}`, { token: token() });
  if (ticket !== orders.ticket) return; // a newer filter's answer wins
  const rows = page.items.map(orderRow);
  if (more) $("orders").append(...rows);
  else $("orders").replaceChildren(...rows);
  orders.loaded = (more ? orders.loaded : 0) + page.items.length;
  orders.total = page.total;
  $("orders-count").textContent = page.total
    ? `${number.format(orders.loaded)} of ${count(page.total, "order", "orders")} shown, newest first.`
    : "No orders.";
  $("orders-more").hidden = orders.loaded >= page.total;
  if (!more) $("orders-status").textContent = "";
}

function orderRow(order) {
  const box = $("orders-error");
  const contact = order.contact ?? {};
  const buttons = [];
  if (order.status === "placed") {
    buttons.push(actionButton("Mark paid", () => orderAction(order, "mark-paid", "is paid"), box,
      { ariaLabel: `Mark paid: order ${shortId(order.id)}` }));
  }
  if (order.status === "reserved" || order.status === "placed") {
    buttons.push(actionButton("Cancel", async () => {
      if (!confirm(`Cancel order ${shortId(order.id)}? Its units go back to stock.`)) return;
      await orderAction(order, "cancel", "is cancelled");
    }, box, { secondary: true, ariaLabel: `Cancel: order ${shortId(order.id)}` }));
  }
  return el("tr", { "data-order": order.id, "data-status": order.status },
    el("th", { scope: "row", tabindex: "-1" }, el("code", { title: order.id }, shortId(order.id))),
    el("td", {}, when(order.created_at)),
    el("td", {}, showTitle(order.show_id)),
    el("td", { class: "buyer" },
      contact.name ? el("div", {}, contact.name) : el("div", { class: "muted" }, "Not confirmed yet"),
      contact.phone ? el("div", { class: "muted" }, contact.phone) : null,
      contact.email ? el("div", { class: "muted" }, contact.email) : null),
    el("td", {}, ...order.lines.map((line) =>
      el("div", {}, `${line.quantity} × ${pick(line.title, LOCALE)} `,
        el("span", { class: "muted" }, `(${line.sku})`),
        line.flash ? el("span", { class: "flash" }, " flash price") : null))),
    el("td", { class: "num" }, formatMoney(order.total, LOCALE)),
    el("td", {}, el("span", { class: `state ${order.status}` }, order.status)),
    el("td", {}, PAYMENT[order.payment_method] ?? order.payment_method ?? "—"),
    el("td", { class: "buttons" }, ...buttons)
  );
}

async function orderAction(order, verb, done) {
  const updated = await api(`/api/v1/orders/${order.id}/${verb}`, { token: token(), method: "POST" });
  const old = $("orders").querySelector(`tr[data-order="${order.id}"]`);
  const row = orderRow(updated);
  if (old) old.replaceWith(row);
  row.querySelector("th").focus(); // the button pressed is gone: keep the keyboard on the row
  $("orders-status").textContent = `Order ${shortId(order.id)} ${done}.`;
}

// --- members and points ---------------------------------------------------------------------

const REASONS = {
  watch: "Watching", first_join: "Joined a show", chat: "Chat", question: "Question asked",
  question_answered: "Question answered", reaction: "Reactions", referral: "Referral",
  purchase: "Purchase", streak: "Streak", redemption: "Redeemed", adjustment: "Adjusted by staff",
  expiry: "Expired", order_cancelled: "Order cancelled",
};
const members = { loaded: 0 };
const member = { id: "", ledger: 0, adjustKey: null };
const memberPath = (id) => `/api/v1/members/${encodeURIComponent(id)}`;

async function loadMembers({ more = false } = {}) {
  const offset = more ? members.loaded : 0;
  const page = await api(`/api/v1/members?limit=${PAGE}&offset=${offset}`, { token: token() });
  const rows = page.items.map((m) =>
    el("tr", { "data-member": m.external_id },
      el("th", { scope: "row" }, el("code", {}, m.external_id)),
      el("td", {}, m.display_name),
      el("td", {}, when(m.created_at)),
      el("td", {}, actionButton("Points", async () => {
        $("m-id").value = m.external_id;
        await lookupMember(m.external_id, { focus: true });
      }, $("members-error"), { secondary: true, ariaLabel: `Points: ${m.external_id}` }))
    )
  );
  if (more) $("members").append(...rows);
  else $("members").replaceChildren(...rows);
  members.loaded = offset + page.items.length;
  $("members-count").textContent = page.total
    ? `${number.format(members.loaded)} of ${count(page.total, "member", "members")} shown, oldest first.`
    : "No members yet: a member is registered the first time they use a viewer token.";
  $("members-more").hidden = members.loaded >= page.total;
}

function figure(name, label, value, detail) {
  return el("div", { "data-figure": name },
    el("dt", {}, label),
    el("dd", {}, value),
    detail ? el("dd", { class: "muted detail" }, detail) : null);
}

async function lookupMember(id, { focus = false, keepStatus = false } = {}) {
  const path = memberPath(id);
  let points, entries;
  try {
    [points, entries] = await Promise.all([
      api(`${path}/points`, { token: token() }),
      api(`${path}/points/entries?limit=${PAGE}`, { token: token() }),
    ]);
  } catch (error) {
    $("member").hidden = true; // not another member's figures under this id
    throw error;
  }
  if (id !== member.id) member.adjustKey = null;
  member.id = id;
  $("member-h").textContent = `Member ${id}`;
  $("member-figures").replaceChildren(
    figure("balance", "Balance", `${number.format(points.balance)} points`),
    figure("tier", "Tier", points.tier, `${number.format(points.rolling_points)} points in the tier window`),
    figure("streak", "Streak", `${count(points.streak, "show", "shows")} in a row`),
    figure("attended", "Shows attended", number.format(points.shows_attended)),
    figure("badges", "Badges", points.badges.length ? points.badges.join(", ") : "None"),
  );
  $("member").dataset.balance = String(points.balance);
  $("member-csv").setAttribute("href", `${path}/engagement.csv`);
  $("ledger").replaceChildren(...entries.items.map(ledgerRow));
  member.ledger = entries.items.length;
  $("ledger-more").hidden = member.ledger >= entries.total;
  if (!keepStatus) $("member-status").textContent = "";
  $("member").hidden = false;
  if (focus) $("member-h").focus();
}

async function moreLedger() {
  const page = await api(`${memberPath(member.id)}/points/entries?limit=${PAGE}&offset=${member.ledger}`, { token: token() });
  $("ledger").append(...page.items.map(ledgerRow));
  member.ledger += page.items.length;
  $("ledger-more").hidden = member.ledger >= page.total;
}

function ledgerRow(entry) {
  return el("tr", { "data-entry": entry.id, "data-reason": entry.reason },
    el("td", {}, when(entry.created_at)),
    el("td", {}, REASONS[entry.reason] ?? entry.reason,
      entry.note ? el("div", { class: "muted" }, entry.note) : null,
      entry.show_id ? el("div", { class: "muted" }, showTitle(entry.show_id)) : null),
    el("td", { class: `num ${entry.points < 0 ? "minus" : "plus"}` }, signed.format(entry.points)),
    el("td", { class: "num" }, number.format(entry.balance_after))
  );
}

async function adjustPoints() {
  const points = Number($("adj-points").value);
  if (!Number.isInteger(points) || points === 0) throw new Error("Enter a whole number of points other than 0.");
  const note = $("adj-note").value.trim();
  if (!note) throw new Error("Say why, for the ledger.");
  // One key per adjustment: a retry after a lost answer adjusts once; a change makes a new one.
  member.adjustKey ??= newKey();
  const entry = await api(`${memberPath(member.id)}/points/adjustments`, {
    token: token(), method: "POST", json: { points, note }, headers: { "Idempotency-Key": member.adjustKey },
  });
  member.adjustKey = null;
  $("adjust").reset();
  $("member-status").textContent = `Adjusted by ${signed.format(entry.points)}: the balance is now ${number.format(entry.balance_after)} points.`;
  await lookupMember(member.id, { keepStatus: true });
}

// --- show analytics -------------------------------------------------------------------------

let chart = null;
let analyticsTicket = 0;

function duration(seconds) {
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

async function loadAnalytics() {
  const id = $("a-show").value;
  const ticket = ++analyticsTicket;
  if (!id) {
    $("analytics").hidden = true;
    return;
  }
  let data, funnel;
  try {
    [data, funnel] = await Promise.all([
      api(`/api/v1/shows/${id}/analytics`, { token: token() }),
      api(`/api/v1/shows/${id}/funnel`, { token: token() }),
    ]);
  } catch (error) {
    if (ticket === analyticsTicket) $("analytics").hidden = true; // not another show's numbers
    throw error;
  }
  if (ticket !== analyticsTicket) return; // another show was chosen meanwhile
  $("analytics").hidden = false;
  $("analytics").dataset.show = id;
  $("analytics-about").textContent = [
    data.title, data.state,
    data.started_at ? `started ${when(data.started_at)}` : "not started",
    data.ended_at ? `ended ${when(data.ended_at)}` : null,
  ].filter(Boolean).join(" · ");
  const s = data.sales;
  const revenue = s.revenue.length
    ? s.revenue.map((m) => formatMoney(m, LOCALE)).join(" + ")
    : formatMoney({ amount_minor: 0, currency: data.currency }, LOCALE);
  $("figures").replaceChildren(
    figure("unique-viewers", "Unique viewers", number.format(data.viewers.unique),
      `${count(data.viewers.members, "member", "members")} · ${count(data.viewers.guests, "guest", "guests")}`),
    figure("peak", "Peak concurrent", number.format(data.viewers.peak_concurrent)),
    figure("average-watch", "Average watch time", duration(data.watch_time.average_seconds_per_watcher),
      `per viewer who watched (${number.format(data.watch_time.watchers)}) · total ${duration(data.watch_time.total_seconds)}`),
    figure("chat", "Chat messages", number.format(data.chat.messages), `${number.format(data.chat.deleted)} deleted`),
    figure("questions", "Questions", number.format(data.questions.asked), `${number.format(data.questions.answered)} answered`),
    figure("reactions", "Reactions", number.format(data.reactions.total)),
    figure("orders", "Orders", number.format(s.orders), `${count(s.units, "unit", "units")} · ${count(s.buyers, "buyer", "buyers")}`),
    figure("revenue", "Revenue", revenue),
    figure("conversion", "Conversion", percent.format(data.conversion.orders_per_viewer),
      `orders per viewer; buyers per viewer ${percent.format(data.conversion.buyers_per_viewer)}`),
    figure("points", "Points earned", number.format(data.points_earned)),
  );
  drawRetention(data.retention);
  drawFunnel(funnel);
  $("analytics-csv").setAttribute("href", `/api/v1/shows/${id}/analytics.csv`);
  $("engagement-csv").setAttribute("href", `/api/v1/shows/${id}/engagement.csv`);
}

function drawRetention(points) {
  const box = $("retention-chart");
  chart?.destroy();
  chart = null;
  box.replaceChildren();
  $("retention-table").tBodies[0].replaceChildren(
    ...points.map((p) => el("tr", {}, el("td", {}, number.format(p.minute)), el("td", {}, number.format(p.viewers))))
  );
  $("retention-empty").hidden = points.length > 0;
  box.hidden = points.length === 0;
  if (!points.length) {
    box.removeAttribute("aria-label");
    return;
  }
  const peak = points.reduce((best, p) => (p.viewers > best.viewers ? p : best));
  const first = points[0].minute;
  const last = points[points.length - 1].minute;
  box.setAttribute("aria-label",
    `Line chart of viewers per minute, minutes ${first} to ${last}: at most ${number.format(peak.viewers)} ` +
    `viewers, in minute ${peak.minute}; ${number.format(points[points.length - 1].viewers)} in the last minute ` +
    "recorded. The table that follows lists every minute.");
  // Every minute from the first to the last; a minute with nothing recorded is a gap.
  const byMinute = new Map(points.map((p) => [p.minute, p.viewers]));
  const xs = [];
  const ys = [];
  for (let m = first; m <= last; m++) {
    xs.push(m);
    ys.push(byMinute.has(m) ? byMinute.get(m) : null);
  }
  const axis = { stroke: "#1d1d1f", grid: { stroke: "#d9d9de", width: 1 }, ticks: { stroke: "#d9d9de", width: 1 } };
  const whole = (u, splits) => splits.map((v) => (Number.isInteger(v) ? number.format(v) : ""));
  chart = new uPlot({
    width: Math.max(280, box.clientWidth),
    height: 240,
    legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    scales: {
      x: { time: false, range: (u, min, max) => (min === max ? [min - 1, max + 1] : [min, max]) },
      y: { range: (u, min, max) => [0, Math.max(1, Math.ceil(max * 1.1))] },
    },
    series: [
      { label: "Minute" },
      { label: "Viewers", stroke: "#b3123f", width: 2, fill: "rgba(179, 18, 63, 0.1)", points: { show: xs.length <= 90, size: 6 } },
    ],
    axes: [
      { ...axis, label: "Minute", incrs: [1, 2, 5, 10, 15, 30, 60, 120, 240], values: whole },
      { ...axis, label: "Viewers", incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000], values: whole, size: 56 },
    ],
  }, [xs, ys], box);
}

new ResizeObserver(() => {
  const box = $("retention-chart");
  if (chart && box.clientWidth) chart.setSize({ width: Math.max(280, box.clientWidth), height: 240 });
}).observe($("retention-chart"));

const STEPS = ["card_shown", "card_opened", "added_to_cart", "checkout_started", "orders"];

function drawFunnel(funnel) {
  if (!funnel.products.length) {
    $("funnel").replaceChildren(el("tr", {}, el("td", { colspan: "8", class: "muted" }, "No product activity in this show yet.")));
    return;
  }
  $("funnel").replaceChildren(...funnel.products.map((p) => {
    const largest = Math.max(1, ...STEPS.map((step) => p[step]));
    return el("tr", { "data-sku": p.sku },
      el("th", { scope: "row" }, pick(p.title, LOCALE) || p.sku, el("div", { class: "muted" }, p.sku)),
      ...STEPS.map((step) =>
        el("td", { class: "num", "data-step": step }, number.format(p[step]),
          el("span", { class: "meter", "aria-hidden": "true" },
            el("span", { style: `width: ${Math.round((100 * p[step]) / largest)}%` })))),
      el("td", { class: "num" }, number.format(p.units)),
      el("td", { class: "num" }, p.revenue ? formatMoney(p.revenue, LOCALE) : "—")
    );
  }));
}

// --- CSV exports: the API wants the key in a header, so the link fetches, then saves -------

async function download(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${token()}` }, credentials: "same-origin" });
  if (!response.ok) {
    const problem = await response.json().catch(() => ({ detail: response.statusText }));
    throw new ApiError(problem, response.status);
  }
  const name = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "")?.[1]
    || path.split("/").pop();
  const url = URL.createObjectURL(await response.blob());
  const link = el("a", { href: url, download: name, hidden: "" });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

for (const [id, box] of [["analytics-csv", "analytics-error"], ["engagement-csv", "analytics-error"], ["member-csv", "members-error"]]) {
  $(id).addEventListener("click", (event) => {
    event.preventDefault();
    guarded(() => download($(id).getAttribute("href")), $(box));
  });
}

// --- catalog --------------------------------------------------------------------------------

async function loadProducts() {
  const q = $("q").value.trim();
  const query = new URLSearchParams({ limit: "100" });
  if (q) query.set("q", q);
  const page = await api(`/api/v1/products?${query}`, { token: token() });
  $("count").textContent = `${page.total} products${page.total > page.items.length ? ` (first ${page.items.length} shown)` : ""}`;
  $("products").replaceChildren(
    ...page.items.map((p) =>
      el("tr", {},
        el("td", {}, p.sku),
        el("td", {}, pick(p.title, "zh-HK"), el("div", { class: "muted" }, p.title.en ?? "")),
        el("td", { class: "num" }, formatMoney(p.price, "zh-HK"),
          p.compare_at_price ? el("div", { class: "was" }, formatMoney(p.compare_at_price, "zh-HK")) : null),
        el("td", { class: "num" }, String(p.stock)),
        el("td", {}, p.status)
      )
    )
  );
}

async function importFile(dryRun) {
  const file = $("file").files[0];
  if (!file) throw new Error("Choose a CSV or JSON file first.");
  const json = file.name.toLowerCase().endsWith(".json") || file.type === "application/json";
  const query = new URLSearchParams();
  if (dryRun) query.set("dry_run", "true");
  if ($("valid-only").checked) query.set("valid_only", "true");
  $("import-errors").replaceChildren();
  try {
    const report = await api(`/api/v1/products/import?${query}`, {
      token: token(), method: "POST", body: await file.text(), contentType: json ? "application/json" : "text/csv",
    });
    $("import-result").textContent = report.written
      ? `${report.rows} rows: ${report.created} created, ${report.updated} updated.`
      : `${report.rows} rows checked, nothing written.`;
    listRowErrors(report.errors);
    if (report.written) await loadProducts();
  } catch (error) {
    if (error instanceof ApiError && error.problem.errors) {
      $("import-result").textContent = error.message;
      listRowErrors(error.problem.errors);
      return;
    }
    throw error;
  }
}

function listRowErrors(errors) {
  $("import-errors").replaceChildren(
    ...errors.map((e) => el("li", {}, `Row ${e.row ?? "?"}${e.sku ? ` (${e.sku})` : ""}${e.field ? ` ${e.field}` : ""}: ${e.message}`))
  );
}

// --- webhook deliveries ---------------------------------------------------------------------

const deliveries = { loaded: 0, ticket: 0 };
let endpoints = new Map();

async function loadEndpoints() {
  const list = await api("/api/v1/webhook-endpoints", { token: token() });
  endpoints = new Map(list.items.map((e) => [e.id, e]));
  const select = $("w-endpoint");
  const kept = select.value;
  select.replaceChildren(
    el("option", { value: "" }, "All endpoints"),
    ...list.items.map((e) => el("option", { value: e.id },
      `${e.url}${e.description ? ` (${e.description})` : ""}${e.enabled ? "" : " (disabled)"}`))
  );
  if (endpoints.has(kept)) select.value = kept;
}

async function loadDeliveries({ more = false } = {}) {
  const ticket = ++deliveries.ticket;
  const query = new URLSearchParams({ limit: String(PAGE), offset: String(more ? deliveries.loaded : 0) });
  for (const [param, id] of [["status", "w-status"], ["event_type", "w-event"], ["endpoint_id", "w-endpoint"]]) {
    if ($(id).value) query.set(param, $(id).value);
  }
  const page = await api(`/api/v1/webhook-deliveries?${query}`, { token: token() });
  if (ticket !== deliveries.ticket) return;
  const rows = page.items.map(deliveryRow);
  if (more) $("deliveries").append(...rows);
  else $("deliveries").replaceChildren(...rows);
  deliveries.loaded = (more ? deliveries.loaded : 0) + page.items.length;
  $("deliveries-count").textContent = page.total
    ? `${number.format(deliveries.loaded)} of ${count(page.total, "delivery", "deliveries")} shown, newest first.`
    : "No deliveries.";
  $("deliveries-more").hidden = deliveries.loaded >= page.total;
  if (!more) $("webhooks-status").textContent = "";
}

function deliveryRow(d) {
  const endpoint = endpoints.get(d.endpoint_id);
  // The last attempt's error (a succeeded delivery has none); the status code unless it says it.
  const code = d.last_status_code ? `HTTP ${d.last_status_code}` : null;
  const problem = d.status === "succeeded" ? ""
    : [code && !(d.last_error ?? "").includes(code) ? code : null, d.last_error].filter(Boolean).join(": ");
  return el("tr", { "data-delivery": d.id, "data-status": d.status, "data-event": d.event_type },
    el("td", {}, when(d.created_at)),
    el("th", { scope: "row", tabindex: "-1" }, el("code", {}, d.event_type)),
    el("td", { class: "url" }, endpoint ? endpoint.url : shortId(d.endpoint_id)),
    el("td", {}, el("span", { class: `state ${d.status}` }, d.status)),
    el("td", { class: "num" }, number.format(d.attempts)),
    el("td", { class: "url" }, problem || "—"),
    el("td", {}, d.status === "pending" ? when(d.next_attempt_at) : "—"),
    el("td", { class: "buttons" }, d.status === "failed"
      ? actionButton("Retry", () => retryDelivery(d), $("webhooks-error"), { ariaLabel: `Retry: ${d.event_type} delivery ${shortId(d.id)}` })
      : null)
  );
}

async function retryDelivery(d) {
  const updated = await api(`/api/v1/webhook-deliveries/${d.id}/retry`, { token: token(), method: "POST" });
  const row = deliveryRow(updated);
  $("deliveries").querySelector(`tr[data-delivery="${d.id}"]`)?.replaceWith(row);
  row.querySelector("th").focus();
  $("webhooks-status").textContent = `The ${d.event_type} delivery is queued again; refresh to see how it went.`;
}

// --- wiring ---------------------------------------------------------------------------------

// --- videos: uploads, clips cut by staff, and each show's automatic clips ------------------

const VIDEO_POLL_MS = 1500; // while a job is queued or running, its progress is read this often
const videos = { timer: null };
const seconds = (s) => (s === null || s === undefined ? "—" : `${number.format(Math.round(s * 10) / 10)} s`);
const busy = (job) => job.state === "queued" || job.state === "running";

function jobCell(job) {
  const parts = [el("span", { class: `state ${job.state}` }, job.state)];
  if (busy(job)) {
    parts.push(" ", el("progress", { max: "100", value: String(job.progress_pct), "aria-label": `${job.progress_pct}% made` }),
      ` ${job.progress_pct}%`);
  }
  if (job.error) parts.push(el("div", { class: "error job-error" }, job.error));
  return el("td", {}, ...parts);
}

async function loadVideos() {
  const page = await api("/api/v1/videos?limit=50", { token: token() });
  $("videos").replaceChildren(...page.items.map(videoRow));
  $("videos-count").textContent = page.total
    ? `${count(page.total, "video", "videos")}, newest first${page.total > page.items.length ? " (the latest 50 shown)" : ""}.`
    : "No uploads or staff clips yet.";
  const clipsShown = await loadAutoClips();
  pollVideos(page.items.some(busy) || clipsShown.some(busy));
}

function pollVideos(active) {
  if (!active || videos.timer) return;
  videos.timer = setTimeout(() => {
    videos.timer = null;
    guarded(loadVideos, $("videos-error"));
  }, VIDEO_POLL_MS);
}

function videoRow(video) {
  const box = $("videos-error");
  const poster = video.poster_url ? el("img", { src: video.poster_url, alt: "", width: "96", loading: "lazy" }) : "—";
  const actions = [];
  if (video.video_url) actions.push(el("a", { href: video.video_url }, "MP4"), " ");
  actions.push(actionButton("Delete", async () => {
    await api(`/api/v1/videos/${video.id}`, { token: token(), method: "DELETE" });
    await loadVideos();
    $("videos-status").textContent = `Deleted “${video.title}”.`;
  }, box, { secondary: true, ariaLabel: `Delete ${video.title}` }));
  const kind = video.kind === "clip" ? `Clip of ${showTitle(video.show_id)} from ${seconds(video.start_s)}` : "Upload";
  return el("tr", { "data-video": video.id, "data-state": video.state },
    el("td", {}, poster),
    el("td", {}, video.title),
    el("td", {}, kind, video.transcoded ? " (re-encoded)" : ""),
    jobCell(video),
    el("td", { class: "num" }, seconds(video.duration_s)),
    el("td", {}, video.tags.map((t) => `${t.sku} @ ${seconds(t.at_s)}`).join(", ") || "—"),
    el("td", {}, ...actions));
}

// "SERUM-30@12, TEE-1" -> [{sku: "SERUM-30", at_s: 12}, {sku: "TEE-1"}]
function parseTags(text, { timeRequired }) {
  return text.split(",").map((part) => part.trim()).filter(Boolean).map((part) => {
    const [sku, at] = part.split("@").map((x) => x.trim());
    if (at === undefined) {
      if (timeRequired) return { sku, at_s: 0 };
      return { sku };
    }
    const value = Number(at);
    if (!Number.isFinite(value) || value < 0) throw new Error(`“${part}”: the time after @ must be seconds, like SERUM-30@12.`);
    return { sku, at_s: value };
  });
}

// An upload with a progress bar (fetch cannot report upload progress; XHR can).
function sendUpload(form) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", "/api/v1/videos");
    request.setRequestHeader("Authorization", `Bearer ${token()}`);
    request.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      const pct = Math.floor((event.loaded / event.total) * 100);
      $("u-progress").value = pct;
      $("u-progress-text").textContent = `Sending: ${pct}%`;
    });
    request.addEventListener("load", () => {
      let body = {};
      try { body = JSON.parse(request.responseText); } catch { body = { detail: request.statusText }; }
      if (request.status === 202) resolve(body);
      else reject(new ApiError(body, request.status));
    });
    request.addEventListener("error", () => reject(new Error("The upload was cut off: check the connection and send it again.")));
    request.send(form);
  });
}

async function uploadVideo() {
  const file = $("u-file").files[0];
  if (!file) throw new Error("Choose a video file.");
  const form = new FormData();
  form.append("title", $("u-title").value.trim() || file.name);
  form.append("tags", JSON.stringify(parseTags($("u-tags").value, { timeRequired: true })));
  form.append("file", file);
  $("u-send").disabled = true;
  $("u-progress").hidden = false;
  try {
    const video = await sendUpload(form);
    $("u-progress-text").textContent = "";
    $("videos-status").textContent = `“${video.title}” is uploaded; it is being made.`;
    $("upload").reset();
  } finally {
    $("u-send").disabled = false;
    $("u-progress").hidden = true;
    $("u-progress").value = 0;
  }
  await loadVideos();
}

async function cutClip() {
  const showId = $("c-show").value;
  if (!showId) throw new Error("Choose the show to cut from.");
  const body = {
    start_s: Number($("c-start").value),
    end_s: Number($("c-end").value),
    tags: parseTags($("c-tags").value, { timeRequired: false }),
  };
  if ($("c-title").value.trim()) body.title = $("c-title").value.trim();
  const video = await api(`/api/v1/shows/${showId}/clips`, { token: token(), method: "POST", json: body });
  $("videos-status").textContent = `“${video.title}” is being cut (from ${seconds(video.start_s)}).`;
  await loadVideos();
}

async function describeReplay() {
  const showId = $("c-show").value;
  $("c-replay").textContent = "";
  if (!showId) return;
  const replay = await api(`/api/v1/shows/${showId}/replay`);
  if (!replay.ready) {
    $("c-replay").textContent = "This show has no finished replay (yet).";
    return;
  }
  $("c-end").max = String(replay.duration_s);
  const chapters = replay.moments.map((m) => `${m.sku} at ${seconds(m.at_s)}`).join(", ");
  $("c-replay").textContent = `The replay is ${seconds(replay.duration_s)} long.${chapters ? ` Products: ${chapters}.` : ""}`;
}

async function loadAutoClips() {
  const showId = $("ac-show").value;
  if (!showId) {
    $("auto-clips").replaceChildren();
    return [];
  }
  const list = await api(`/api/v1/shows/${showId}/clips`, { token: token() });
  $("auto-clips").replaceChildren(...list.items.map((clip) =>
    el("tr", { "data-clip": clip.sku, "data-state": clip.state },
      el("td", {}, clip.sku),
      jobCell(clip),
      el("td", { class: "num" }, seconds(clip.start_s)),
      el("td", { class: "num" }, seconds(clip.duration_s)),
      el("td", {}, clip.url ? el("a", { href: clip.url }, "MP4") : "—"))));
  if (!list.items.length) $("auto-clips").append(el("tr", {}, el("td", { colspan: "5", class: "muted" }, "No clips: nothing was pinned, or the show has not ended.")));
  return list.items;
}

async function loadAll() {
  await loadShows(); // first: orders, the funnel and the ledger name their shows
  await Promise.all([
    guarded(() => loadOrders(), $("orders-error")),
    guarded(() => loadMembers(), $("members-error")),
    guarded(loadAnalytics, $("analytics-error")),
    guarded(loadProducts),
    guarded(loadVideos, $("videos-error")),
    guarded(async () => { await loadEndpoints(); await loadDeliveries(); }, $("webhooks-error")),
  ]);
}

$("schedule").addEventListener("submit", (event) => {
  event.preventDefault();
  guarded(async () => {
    await api("/api/v1/shows", {
      token: token(), method: "POST",
      json: {
        title: $("s-title").value,
        scheduled_start: new Date($("s-start").value).toISOString(),
        host_name: $("s-host").value,
        locale: $("s-locale").value,
      },
    });
    event.target.reset();
    await loadShows();
  });
});
$("load").addEventListener("click", () => guarded(loadAll));
$("key").addEventListener("keydown", (e) => { if (e.key === "Enter") guarded(loadAll); });

for (const id of ["o-status", "o-show"]) $(id).addEventListener("change", () => guarded(() => loadOrders(), $("orders-error")));
$("o-refresh").addEventListener("click", () => guarded(() => loadOrders(), $("orders-error")));
$("orders-more").addEventListener("click", () => guarded(() => loadOrders({ more: true }), $("orders-error")));

$("lookup").addEventListener("submit", (event) => {
  event.preventDefault();
  guarded(async () => {
    const id = $("m-id").value.trim();
    if (!id) throw new Error("Enter a member id.");
    await lookupMember(id, { focus: true });
  }, $("members-error"));
});
$("adjust").addEventListener("input", () => { member.adjustKey = null; });
$("adjust").addEventListener("submit", (event) => {
  event.preventDefault();
  guarded(adjustPoints, $("members-error"));
});
$("ledger-more").addEventListener("click", () => guarded(moreLedger, $("members-error")));
$("members-more").addEventListener("click", () => guarded(() => loadMembers({ more: true }), $("members-error")));

$("a-show").addEventListener("change", () => guarded(loadAnalytics, $("analytics-error")));
$("a-refresh").addEventListener("click", () => guarded(loadAnalytics, $("analytics-error")));

$("upload").addEventListener("submit", (event) => {
  event.preventDefault();
  guarded(uploadVideo, $("videos-error"));
});
$("cut").addEventListener("submit", (event) => {
  event.preventDefault();
  guarded(cutClip, $("videos-error"));
});
$("c-show").addEventListener("change", () => guarded(describeReplay, $("videos-error")));
$("ac-show").addEventListener("change", () => guarded(loadVideos, $("videos-error")));

$("search").addEventListener("click", () => guarded(loadProducts));
$("q").addEventListener("keydown", (e) => { if (e.key === "Enter") guarded(loadProducts); });
$("check").addEventListener("click", () => guarded(() => importFile(true)));
$("import").addEventListener("click", () => guarded(() => importFile(false)));

for (const id of ["w-status", "w-event", "w-endpoint"]) $(id).addEventListener("change", () => guarded(() => loadDeliveries(), $("webhooks-error")));
$("w-refresh").addEventListener("click", () => guarded(async () => { await loadEndpoints(); await loadDeliveries(); }, $("webhooks-error")));
$("deliveries-more").addEventListener("click", () => guarded(() => loadDeliveries({ more: true }), $("webhooks-error")));

if (token()) guarded(loadAll);

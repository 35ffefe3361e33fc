// Admin page: shows and their lifecycle, scheduling, the catalog and product import.
import { api, el, formatMoney, formatTime, pick, showError, storedToken, ApiError } from "/web/common.js";

const $ = (id) => document.getElementById(id);
const token = storedToken("showroom.admin", $("key"));
const errorBox = $("error");
const ACTIONS = { scheduled: ["start", "cancel"], live: ["end"], ended: [], cancelled: [] };

async function guarded(work) {
  errorBox.hidden = true;
  try {
    await work();
  } catch (error) {
    showError(errorBox, error);
  }
}

async function loadShows() {
  const page = await api("/api/v1/shows?limit=100", { token: token() });
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
}

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
$("load").addEventListener("click", () => guarded(async () => { await loadShows(); await loadProducts(); }));
$("search").addEventListener("click", () => guarded(loadProducts));
$("q").addEventListener("keydown", (e) => { if (e.key === "Enter") guarded(loadProducts); });
$("check").addEventListener("click", () => guarded(() => importFile(true)));
$("import").addEventListener("click", () => guarded(() => importFile(false)));
if (token()) guarded(async () => { await loadShows(); await loadProducts(); });

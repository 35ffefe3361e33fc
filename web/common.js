// Shared by the pages: API calls with problem+json errors, money and localized text.

export class ApiError extends Error {
  constructor(problem, status) {
    super(problem.detail || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export async function api(path, { token, method = "GET", json, body, contentType, headers: extra } = {}) {
  const headers = { ...extra };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (json !== undefined) {
    body = JSON.stringify(json);
    headers["Content-Type"] = "application/json";
  } else if (contentType) {
    headers["Content-Type"] = contentType;
  }
  const response = await fetch(path, { method, headers, body, credentials: "same-origin" });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({ detail: response.statusText }));
  if (!response.ok) throw new ApiError(data, response.status);
  return data;
}

const DECIMALS = { JPY: 0, KRW: 0 };

export const currencyDecimals = (currency) => DECIMALS[currency] ?? 2;

// The pages speak zh-HK, zh-CN and en: the show's locale when it is one of them, else the
// browser's language, else zh-HK.
export const LOCALES = ["zh-HK", "zh-CN", "en"];

export function chooseLocale(wanted) {
  if (LOCALES.includes(wanted)) return wanted;
  for (const tag of [wanted, ...(navigator.languages ?? [navigator.language])]) {
    const lower = String(tag || "").toLowerCase();
    if (/^zh-(hk|mo|tw|hant)/.test(lower)) return "zh-HK";
    if (lower.startsWith("zh")) return "zh-CN";
    if (lower.startsWith("en")) return "en";
  }
  return "zh-HK";
}

// A fresh Idempotency-Key per attempt (crypto.randomUUID needs a secure context).
export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

export function formatMoney(money, locale) {
  if (!money) return "";
  const digits = currencyDecimals(money.currency);
  return new Intl.NumberFormat(locale, {
    style: "currency",
    currency: money.currency,
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  }).format(money.amount_minor / 10 ** digits);
}

export function formatTime(iso, locale) {
  return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" }).format(new Date(iso));
}

// The text in the wanted locale, else zh-HK, else English, else anything there is.
export function pick(localized, locale) {
  if (!localized) return "";
  return localized[locale] ?? localized["zh-HK"] ?? localized.en ?? Object.values(localized)[0] ?? "";
}

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

// Keeps a pasted token for this tab only.
export function storedToken(name, input) {
  input.value = sessionStorage.getItem(name) || "";
  input.addEventListener("change", () => sessionStorage.setItem(name, input.value.trim()));
  return () => input.value.trim();
}

export function showError(target, error) {
  target.textContent = error instanceof ApiError ? error.message : String(error);
  target.hidden = false;
}

export function showIdFromPath() {
  return decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
}

// Showroom on a brand's own page, with one script tag:
//
//   <script src="https://SHOWROOM/embed.js" data-show="SHOW_ID" async></script>
//   <script src="https://SHOWROOM/embed.js" data-sku="SKU" async></script>
//
// data-show embeds that show (live, or its replay once it ended); data-sku embeds the
// product's best video (GET /api/v1/products/{sku}/videos: a replay of a show that pinned
// it, most watched first, starting where it was pinned; or, for a product only uploaded
// videos show, the newest of them as a plain <video> with its poster, starting at the
// product's tag, with `showroom:ready` {video_id, kind, title, sku}), or nothing, with a
// `showroom:no_videos` {sku} event on the page, when it has none.
//
// It puts the watch page in an iframe right after the tag (the video, the pinned
// products, chat and hearts) and turns what the viewer does there into DOM events on the
// iframe's wrapper, so the brand's own cart can take over:
//
//   showroom:ready           {show_id, title, state, locale}
//   showroom:product_opened  {show_id, sku, title, price, image_url}
//   showroom:add_to_cart     {show_id, sku, title, price, image_url, quantity, cart}
//   showroom:buy_now         {show_id, sku, title, price, image_url, quantity, cart}  (data-cart="host")
//   showroom:handoff         {show_id, url}   the page then goes to url, unless a listener calls preventDefault()
//   showroom:order_placed    {show_id, order_id, total}
//
// Options on the tag: data-cart="host" (add to cart and buy now only send the events: the
// brand's cart holds the items, Showroom's cart is not used), data-token (a member's viewer
// token, signed by the brand's backend; without it the viewer watches as a guest),
// data-title (the iframe's accessible name), data-height (CSS height; default: 9:16 of the
// width, at most 90% of the viewport's height). Messages are taken only from the Showroom
// origin this script came from and from its own iframe.
(() => {
  "use strict";
  const script = document.currentScript;
  if (!script || !script.src) return;
  const origin = new URL(script.src).origin;
  const data = script.dataset;
  const show = (data.show || "").trim();
  const sku = (data.sku || "").trim();
  if (!show && !sku) {
    console.error("Showroom embed: set data-show to a show's id, or data-sku to a product's SKU");
    return;
  }

  function mount(path, attributes) {
    const url = new URL(path, origin);
    url.searchParams.set("embed", "1");
    url.searchParams.set("parent", window.location.origin);
    if (data.cart === "host") url.searchParams.set("cart", "host");
    if (data.token) url.hash = `token=${encodeURIComponent(data.token)}`;

    const wrapper = document.createElement("div");
    wrapper.className = "showroom-embed";
    for (const [key, value] of Object.entries(attributes)) wrapper.dataset[key] = value;
    wrapper.style.cssText = "position:relative;width:100%;max-width:480px;";
    const frame = document.createElement("iframe");
    frame.src = url.href;
    frame.title = data.title || "Live shopping";
    frame.allow = "autoplay; fullscreen; picture-in-picture; clipboard-write";
    frame.setAttribute("allowfullscreen", "");
    frame.loading = "lazy";
    frame.referrerPolicy = "origin";
    frame.style.cssText = `display:block;width:100%;border:0;border-radius:12px;background:#000;${
      data.height ? `height:${data.height};` : "aspect-ratio:9/16;max-height:90vh;"
    }`;
    wrapper.appendChild(frame);
    script.insertAdjacentElement("afterend", wrapper);

    window.addEventListener("message", (event) => {
      if (event.origin !== origin || event.source !== frame.contentWindow) return;
      const message = event.data;
      if (!message || message.source !== "showroom" || typeof message.type !== "string") return;
      if (!message.type.startsWith("showroom:")) return;
      const proceed = wrapper.dispatchEvent(
        new CustomEvent(message.type, { detail: message.detail || {}, bubbles: true, cancelable: true }),
      );
      if (message.type === "showroom:handoff" && proceed) {
        const target = new URL(String(message.detail && message.detail.url), window.location.href);
        if (target.protocol === "https:" || target.protocol === "http:") window.location.assign(target.href);
      }
    });
  }

  if (show) {
    mount(`/watch/${encodeURIComponent(show)}`, { show });
    return;
  }
  // A product page: the product's best video (a replay starting where it was pinned), or
  // nothing at all when it has none (the page stays as it was).
  const none = () =>
    script.dispatchEvent(new CustomEvent("showroom:no_videos", { detail: { sku }, bubbles: true }));
  fetch(`${origin}/api/v1/products/${encodeURIComponent(sku)}/videos?limit=1`)
    .then((response) => (response.ok ? response.json() : { items: [] }))
    .then((list) => {
      const best = (list.items || [])[0];
      if (!best) none();
      else if (best.watch_url) mount(best.watch_url, { sku, show: best.show_id });
      else play(best); // an upload has no show, so no watch page: its video, on this page
    })
    .catch(none);

  // An uploaded video on the product's own page: the product is already there, so the
  // video alone, with its poster, starting at the product's first moment.
  function play(item) {
    const wrapper = document.createElement("div");
    wrapper.className = "showroom-embed";
    wrapper.dataset.sku = sku;
    wrapper.dataset.video = item.video_id;
    wrapper.style.cssText = "position:relative;width:100%;max-width:480px;";
    const video = document.createElement("video");
    const at = item.moments && item.moments.length ? item.moments[0].at_s : 0;
    video.src = new URL(item.video_url, origin).href + (at > 0 ? `#t=${at}` : "");
    if (item.poster_url) video.poster = new URL(item.poster_url, origin).href;
    video.controls = true;
    video.playsInline = true;
    video.preload = "metadata";
    video.title = data.title || item.title;
    video.style.cssText = `display:block;width:100%;border-radius:12px;background:#000;${
      data.height ? `height:${data.height};` : "max-height:90vh;"
    }`;
    // Its first play on this browser counts once towards the video's rank among the
    // product's videos (a beacon: no body, no preflight, nothing to wait for).
    video.addEventListener("playing", () => {
      const url = `${origin}/videos/${encodeURIComponent(item.video_id)}/plays/${viewerId()}`;
      if (navigator.sendBeacon) navigator.sendBeacon(url);
      else fetch(url, { method: "POST", mode: "no-cors", keepalive: true }).catch(() => {});
    }, { once: true });
    wrapper.appendChild(video);
    script.insertAdjacentElement("afterend", wrapper);
    wrapper.dispatchEvent(new CustomEvent("showroom:ready", {
      detail: { video_id: item.video_id, kind: item.kind, title: item.title, sku },
      bubbles: true,
    }));
  }

  // A random id for this browser on this site, kept in its storage (a fresh one per page
  // when storage is off): its plays of a video count once.
  function viewerId() {
    const key = "showroom.viewer";
    const fresh = () => Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
    try {
      let id = localStorage.getItem(key);
      if (!id || !/^[A-Za-z0-9_-]{8,64}$/.test(id)) {
        id = fresh();
        localStorage.setItem(key, id);
      }
      return id;
    } catch {
      return fresh();
    }
  }
})();

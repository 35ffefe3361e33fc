// Showroom on a brand's own page, with one script tag:
//
//   <script src="https://SHOWROOM/embed.js" data-show="SHOW_ID" async></script>
//
// It puts the show's watch page in an iframe right after the tag (the video, the pinned
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
  if (!show) {
    console.error("Showroom embed: set data-show to the show's id");
    return;
  }
  const url = new URL(`/watch/${encodeURIComponent(show)}`, origin);
  url.searchParams.set("embed", "1");
  url.searchParams.set("parent", window.location.origin);
  if (data.cart === "host") url.searchParams.set("cart", "host");
  if (data.token) url.hash = `token=${encodeURIComponent(data.token)}`;

  const wrapper = document.createElement("div");
  wrapper.className = "showroom-embed";
  wrapper.dataset.show = show;
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
})();

/* Fashion shop "alternatives" widget. Include with one tag where the cards should appear:
     <script src="https://SHOP/widget/alternatives.js" data-sku="ABC" async></script>
   Options (data- attributes): data-sku (required), data-limit (1–12, default 4), data-size,
   data-title (heading; default "You may also like"), data-target (a CSS selector to render into
   instead of next to the tag). Renders into a Shadow DOM, so the host page's styles do not leak in
   and ours do not leak out. See docs/widget.md. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) {
    // very old browsers: the last widget tag without a host yet
    var tags = document.querySelectorAll("script[data-sku][src*='/widget/alternatives.js']:not([data-rendered])");
    script = tags[tags.length - 1];
  }
  if (!script || script.dataset.rendered) return;
  script.dataset.rendered = "1";

  var sku = script.dataset.sku || "";
  var shop = new URL(script.src, document.baseURI).origin;
  var limit = parseInt(script.dataset.limit || "4", 10);
  if (!(limit >= 1 && limit <= 12)) limit = 4;
  var heading = script.dataset.title || "You may also like";

  var host = document.createElement("div");
  host.className = "fashion-shop-alternatives";
  host.setAttribute("data-sku", sku);
  var target = script.dataset.target && document.querySelector(script.dataset.target);
  if (target) target.appendChild(host);
  else script.parentNode.insertBefore(host, script.nextSibling);
  var root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;

  var css =
    ":host{all:initial;display:block;font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#161616}" +
    ".w{padding:12px 0}" +
    "h2{font-family:inherit;font-size:13px;font-weight:650;line-height:1.3;letter-spacing:.12em;margin:0 0 10px;text-transform:uppercase;color:#161616}" +
    "ul{list-style:none;margin:0;padding:0 0 6px;display:grid;grid-auto-flow:column;grid-auto-columns:minmax(130px,160px);gap:12px;overflow-x:auto;scroll-snap-type:x mandatory}" +
    "li{scroll-snap-align:start}" +
    "a{display:block;color:inherit;text-decoration:none;border-radius:10px;outline-offset:3px}" +
    "a:focus-visible{outline:2px solid #161616}" +
    ".img{display:block;aspect-ratio:3/4;background:#f3f1ee;border-radius:10px;overflow:hidden}" +
    "img{width:100%;height:100%;object-fit:contain;display:block;transition:transform .2s}" +
    "a:hover img{transform:scale(1.03)}" +
    ".t{display:block;margin-top:6px;font-size:13px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}" +
    ".p{display:block;font-weight:600;font-size:13px}" +
    ".r{display:block;font-size:12px;color:#5c5c5c;margin-top:2px}" +
    ".by{display:block;margin-top:4px;font-size:11px;color:#6b6b6b}.by a{display:inline;text-decoration:underline}";

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text) node.textContent = text;
    return node;
  }

  function render(data) {
    var items = (data && data.alternatives) || [];
    if (!items.length) return;
    var style = el("style");
    style.textContent = css;
    var wrap = el("section", "w");
    wrap.setAttribute("aria-label", heading);
    wrap.appendChild(el("h2", "", heading));
    var list = el("ul");
    items.forEach(function (item) {
      var li = el("li", "card");
      var a = el("a");
      a.href = item.url;
      a.setAttribute("data-sku", item.sku);
      var pic = el("span", "img");
      if (item.image) {
        var img = el("img");
        img.src = item.image;
        img.alt = item.title;
        img.loading = "lazy";
        pic.appendChild(img);
      }
      a.appendChild(pic);
      a.appendChild(el("span", "t", item.title));
      a.appendChild(el("span", "p", item.price_display || item.price + " " + item.currency));
      if (item.reason) a.appendChild(el("span", "r", item.reason.charAt(0).toUpperCase() + item.reason.slice(1)));
      li.appendChild(a);
      list.appendChild(li);
    });
    wrap.appendChild(list);
    var by = el("span", "by");
    var shopLink = el("a", "", "Fashion shop");
    shopLink.href = shop + "/";
    by.appendChild(document.createTextNode("From "));
    by.appendChild(shopLink);
    wrap.appendChild(by);
    root.appendChild(style);
    root.appendChild(wrap);
    host.setAttribute("data-state", "ready");
  }

  if (!sku) {
    host.setAttribute("data-state", "error");
    if (window.console) console.warn("alternatives widget: data-sku is missing");
    return;
  }
  var url = shop + "/widget/alternatives/" + encodeURIComponent(sku) + ".json?limit=" + limit;
  if (script.dataset.size) url += "&size=" + encodeURIComponent(script.dataset.size);
  fetch(url, { mode: "cors", credentials: "omit" })
    .then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) throw new Error(body.error || "HTTP " + response.status);
        return body;
      });
    })
    .then(render)
    .catch(function (error) {
      host.setAttribute("data-state", "error");
      if (window.console) console.warn("alternatives widget:", error.message);
    });
})();

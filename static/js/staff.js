/* Staff pages: drag-and-drop multi-photo upload, live processing status (polled every second while
   any photo is pending or processing), re-run buttons, and the bulk import progress bar.
   Plain JS, no framework; every write is a POST carrying the CSRF token. */
(function () {
  "use strict";

  var POLL_MS = 1000;

  function csrfToken() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") node.textContent = attrs[key];
      else if (key === "className") node.className = attrs[key];
      else node.setAttribute(key, attrs[key]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  function getJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" }).then(function (r) {
      if (!r.ok || (r.headers.get("Content-Type") || "").indexOf("json") < 0) {
        throw new Error(r.status === 200 ? "your session ended; log in again" : "the server answered " + r.status);
      }
      return r.json();
    });
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      body: body || new FormData(),
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
    }).then(function (r) {
      return r.json().catch(function () { return { error: "the server answered " + r.status }; }).then(function (data) {
        if (!r.ok && !data.error) data.error = "the server answered " + r.status;
        return data;
      });
    });
  }

  /* --- live image panels ------------------------------------------------------------------------ */

  var panels = [];

  function figure(label, url, cls) {
    var box = el("figure", { className: "staff-fig " + (cls || "") }, [
      url ? el("img", { src: url, alt: label }) : el("span", { className: "staff-fig-empty", text: "—" }),
      el("figcaption", { text: label }),
    ]);
    return box;
  }

  function card(panel, image) {
    var status = el("span", { className: "staff-badge staff-" + image.status, "data-status": image.status, text: image.status });
    var head = el("div", { className: "staff-card-head" }, [
      el("a", { href: image.product_url, text: image.sku, className: "staff-card-sku" }),
      el("span", { className: "staff-card-name", text: image.source_name || "photo " + image.id }),
      status,
    ]);
    var stage = image.status === "ready" ? "done in " + image.seconds + " s" : image.stage ? "stage: " + image.stage : "";
    var rerun = el("button", { type: "button", className: "button staff-rerun", "data-rerun": image.rerun_url, text: "Re-run" });
    rerun.addEventListener("click", function () {
      rerun.disabled = true;
      rerun.textContent = "Queued…";
      post(image.rerun_url).then(function (data) {
        if (data.error) { rerun.textContent = data.error; return; }
        poll(panel, true);
      });
    });
    if (image.status === "pending" || image.status === "processing") rerun.disabled = true;
    var children = [
      head,
      el("div", { className: "staff-figs" }, [
        figure("original", image.file_url),
        figure("cutout", image.cutout_url, "staff-checker"),
        figure("mask", image.mask_url, "staff-mask"),
      ]),
      stage ? el("p", { className: "staff-stage", text: stage }) : null,
      image.error ? el("p", { className: "staff-error", role: "alert", text: "Failed at " + (image.stage || "?") + ": " + image.error }) : null,
    ];
    if (image.duplicate_of) {
      var d = image.duplicate_of;
      children.push(el("p", { className: "staff-warning", role: "note" }, [
        document.createTextNode(d.same_product ? "Same photo as another photo of this product: " : "Duplicate of a photo of another product: "),
        el("a", { href: d.product_url, text: d.sku + " " + d.title }),
      ]));
    }
    children.push(el("div", { className: "staff-card-actions" }, [rerun]));
    return el("article", { className: "staff-card staff-card-" + image.status, "data-image": String(image.id) }, children);
  }

  function render(panel, data) {
    var cards = panel.node.querySelector("[data-cards]");
    cards.textContent = "";
    data.images.forEach(function (image) { cards.appendChild(card(panel, image)); });
    panel.node.querySelector("[data-empty]").hidden = data.images.length > 0 || (!panel.product && !panel.ids.length);
    panel.node.querySelector("[data-live]").hidden = !data.busy;
    panel.node.setAttribute("data-busy", data.busy ? "1" : "0");
  }

  function statusUrl(panel) {
    var base = panel.node.getAttribute("data-status-url");
    return base + (panel.product ? "?product=" + panel.product : "?ids=" + panel.ids.join(","));
  }

  function poll(panel, force) {
    if (panel.timer) { clearTimeout(panel.timer); panel.timer = null; }
    if (!panel.product && !panel.ids.length) return;
    getJSON(statusUrl(panel)).then(function (data) {
      render(panel, data);
      if (data.busy || force) panel.timer = setTimeout(function () { poll(panel, false); }, POLL_MS);
    }).catch(function (err) {
      panel.node.querySelector("[data-live]").hidden = false;
      panel.node.querySelector("[data-live]").textContent = "status unavailable: " + err.message;
      panel.timer = setTimeout(function () { poll(panel, false); }, POLL_MS * 3);
    });
  }

  function initPanel(node) {
    var ids = (node.getAttribute("data-ids") || "").split(",").filter(Boolean);
    var panel = { node: node, product: node.getAttribute("data-product") || "", ids: ids, timer: null };
    panels.push(panel);
    poll(panel, false);
    return panel;
  }

  /* --- drop zones ----------------------------------------------------------------------------- */

  function initDropzone(zone) {
    var picker = zone.querySelector("[data-picker]");
    var results = zone.querySelector("[data-results]");
    var submit = zone.querySelector(".staff-submit");
    if (submit) submit.hidden = true; // JS uploads as soon as files are chosen or dropped
    zone.classList.add("staff-dropzone-js");

    function upload(files) {
      if (!files || !files.length) return;
      var body = new FormData();
      Array.prototype.forEach.call(files, function (file) { body.append("files", file, file.name); });
      var product = zone.querySelector("input[name=product]");
      if (product) body.append("product", product.value);
      results.textContent = "";
      Array.prototype.forEach.call(files, function (file) {
        results.appendChild(el("li", { className: "busy", "data-file": file.name, text: file.name + ": uploading…" }));
      });
      zone.classList.add("staff-uploading");
      post(zone.getAttribute("action"), body).then(function (data) {
        zone.classList.remove("staff-uploading");
        results.textContent = "";
        if (data.error) {
          results.appendChild(el("li", { className: "bad", text: data.error }));
          return;
        }
        var ids = [];
        data.results.forEach(function (r) {
          var item = el("li", { className: r.ok ? "ok" : "bad", "data-file": r.name }, [el("strong", { text: r.name + ": " })]);
          if (r.ok) {
            item.appendChild(document.createTextNode(r.created ? "stored on " : "already on "));
            item.appendChild(el("a", { href: r.product_url, text: r.sku }));
            ids.push(String(r.image_id));
          } else {
            item.appendChild(document.createTextNode(r.error));
          }
          results.appendChild(item);
        });
        panels.forEach(function (panel) {
          if (!panel.product) ids.forEach(function (id) { if (panel.ids.indexOf(id) < 0) panel.ids.push(id); });
          poll(panel, true);
        });
      }).catch(function (err) {
        zone.classList.remove("staff-uploading");
        results.textContent = "";
        results.appendChild(el("li", { className: "bad", text: "upload failed: " + err.message }));
      });
    }

    ["dragenter", "dragover"].forEach(function (type) {
      zone.addEventListener(type, function (event) {
        event.preventDefault();
        zone.classList.add("staff-dragover");
      });
    });
    ["dragleave", "dragend"].forEach(function (type) {
      zone.addEventListener(type, function (event) {
        if (!zone.contains(event.relatedTarget)) zone.classList.remove("staff-dragover");
      });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      zone.classList.remove("staff-dragover");
      upload(event.dataTransfer && event.dataTransfer.files);
    });
    picker.addEventListener("change", function () {
      upload(picker.files);
      picker.value = "";
    });
    zone.addEventListener("submit", function (event) {
      event.preventDefault();
      upload(picker.files);
    });
  }

  /* --- bulk import progress ------------------------------------------------------------------- */

  function initImportJob(node) {
    var url = node.getAttribute("data-status-url");
    var fill = node.querySelector("[data-job-fill]");
    var bar = node.querySelector("[data-job-bar]");
    function tick() {
      getJSON(url).then(function (job) {
        var badge = node.querySelector("[data-job-status]");
        badge.textContent = job.status_label;
        badge.className = "staff-badge staff-" + job.status;
        fill.style.width = job.percent + "%";
        bar.setAttribute("aria-valuenow", String(job.percent));
        node.querySelector("[data-job-counts]").textContent = job.done + " of " + job.total + " rows (" + job.percent + "%)" + (job.finished && job.failed ? "; bad rows are listed below" : "");
        var error = node.querySelector("[data-job-error]");
        error.hidden = !job.error;
        error.textContent = job.error;
        var requeue = node.querySelector("[data-job-requeue]");
        if (requeue && job.status !== "pending") requeue.hidden = true;
        if (!job.finished) { setTimeout(tick, POLL_MS); return; }
        node.setAttribute("data-finished", job.status);
        node.querySelector("[data-job-result]").hidden = false;
        Array.prototype.forEach.call(node.querySelectorAll("[data-count]"), function (c) {
          c.textContent = job[c.getAttribute("data-count")];
        });
        var table = node.querySelector("[data-job-problems]");
        var body = table.querySelector("tbody");
        body.textContent = "";
        job.problems.forEach(function (p) {
          body.appendChild(el("tr", {}, [el("td", { text: String(p.line) }), el("td", { text: p.sku }), el("td", { text: p.reason })]));
        });
        table.hidden = job.problems.length === 0;
      }).catch(function () { setTimeout(tick, POLL_MS * 3); });
    }
    tick();
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-image-panel]"), initPanel);
    Array.prototype.forEach.call(document.querySelectorAll("[data-dropzone]"), initDropzone);
    Array.prototype.forEach.call(document.querySelectorAll("[data-import-job]"), initImportJob);
  });
})();

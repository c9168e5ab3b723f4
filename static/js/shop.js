/* Storefront behaviour: photo search by file picker, camera, drag and drop or paste (with a
   loading state), and the product gallery's photo / garment-only toggle. Everything works without
   it too: the photo form then has its own submit button. */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function photoForm() {
    return document.querySelector("#photo-search") || document.querySelector("[data-photo-form]");
  }

  function startUpload(form, file) {
    var status = form.querySelector("[data-photo-status]");
    var box = document.querySelector("[data-searchbox]");
    if (file && file.type && file.type.indexOf("image/") !== 0) {
      // the server checks the bytes anyway; this only saves a round trip for the obvious case
      if (status) status.textContent = "“" + file.name + "” is not a photo; choose a JPEG, PNG, WebP, AVIF or GIF.";
      return false;
    }
    form.classList.add("is-loading");
    form.setAttribute("aria-busy", "true");
    if (box) box.classList.add("is-loading");
    if (status) status.textContent = "Looking at your photo…";
    document.querySelectorAll("button, .icon-btn").forEach(function (el) {
      el.setAttribute("aria-disabled", "true");
      if (el.tagName === "BUTTON") el.disabled = true;
    });
    form.submit();
    return true;
  }

  function sendFile(file) {
    var form = photoForm();
    if (!form || !file) return;
    var input = form.querySelector("[data-photo-input]");
    form.querySelectorAll("[data-photo-input]").forEach(function (other) {
      if (other !== input) other.value = "";
    });
    try {
      var transfer = new DataTransfer();
      transfer.items.add(file);
      input.files = transfer.files;
    } catch (e) {
      return;
    }
    startUpload(form, file);
  }

  document.addEventListener("change", function (event) {
    var input = event.target;
    if (!input.matches || !input.matches("[data-photo-input]") || !input.files || !input.files.length) return;
    var form = input.form;
    form.querySelectorAll("[data-photo-input]").forEach(function (other) {
      if (other !== input) other.value = "";
    });
    startUpload(form, input.files[0]);
  });

  function imageFrom(list) {
    for (var i = 0; list && i < list.length; i++) {
      var item = list[i];
      var file = item.getAsFile ? (item.kind === "file" ? item.getAsFile() : null) : item;
      if (file && (!file.type || file.type.indexOf("image/") === 0)) return file;
    }
    return null;
  }

  // Drag and drop anywhere on the page.
  var overlay = document.querySelector("[data-drop-overlay]");
  var depth = 0;
  function hasFiles(event) {
    var types = event.dataTransfer && event.dataTransfer.types;
    return types && Array.prototype.indexOf.call(types, "Files") !== -1;
  }
  document.addEventListener("dragenter", function (event) {
    if (!hasFiles(event)) return;
    depth++;
    if (overlay) overlay.hidden = false;
  });
  document.addEventListener("dragleave", function () {
    depth = Math.max(0, depth - 1);
    if (!depth && overlay) overlay.hidden = true;
  });
  document.addEventListener("dragover", function (event) {
    if (hasFiles(event)) event.preventDefault();
  });
  document.addEventListener("drop", function (event) {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth = 0;
    if (overlay) overlay.hidden = true;
    sendFile(imageFrom(event.dataTransfer.files));
  });

  // Paste an image from the clipboard (text pastes are left alone).
  document.addEventListener("paste", function (event) {
    var data = event.clipboardData;
    var file = data && (imageFrom(data.files) || imageFrom(data.items));
    if (!file) return;
    event.preventDefault();
    sendFile(file);
  });

  // Product gallery: photo / garment-only toggle and thumbnails.
  document.querySelectorAll("[data-gallery]").forEach(function (gallery) {
    var main = gallery.querySelector("[data-gallery-main]");
    if (!main) return;
    var view = "original";
    var toggles = gallery.querySelectorAll("[data-view]");
    function show() {
      var src = view === "cutout" && main.dataset.cutout ? main.dataset.cutout : main.dataset.original;
      main.src = src;
      main.classList.toggle("is-cutout", view === "cutout");
      toggles.forEach(function (b) {
        b.setAttribute("aria-pressed", b.dataset.view === view ? "true" : "false");
      });
    }
    toggles.forEach(function (button) {
      button.addEventListener("click", function () {
        view = button.dataset.view;
        show();
      });
    });
    gallery.querySelectorAll("[data-thumb]").forEach(function (thumb) {
      thumb.addEventListener("click", function () {
        main.dataset.original = thumb.dataset.original;
        main.dataset.cutout = thumb.dataset.cutout;
        gallery.querySelectorAll("[data-thumb]").forEach(function (t) {
          t.setAttribute("aria-pressed", t === thumb ? "true" : "false");
        });
        show();
      });
    });
  });

  // Facets start folded on phones.
  if (window.matchMedia && window.matchMedia("(max-width: 720px)").matches) {
    document.querySelectorAll("[data-facets]").forEach(function (d) {
      d.open = false;
    });
  }
})();

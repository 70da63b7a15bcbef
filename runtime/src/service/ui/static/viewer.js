// Ward's viewer: keys, the mouse wheel and dragging change the slice, the projection's
// angle and the window without reloading the page. Only the picture's URL changes: the
// server renders every picture. Without this script the page's links and form do the same.
(function () {
  "use strict";
  var root = document.getElementById("viewer");
  if (!root) { return; }
  var img = document.getElementById("view");
  var d = root.dataset;
  var s = {
    plane: d.plane,
    slice: parseInt(d.slice, 10),
    slices: parseInt(d.slices, 10),
    angle: parseInt(d.angle, 10),
    angles: parseInt(d.angles, 10),
    wc: parseFloat(d.wc),
    ww: parseFloat(d.ww),
    opacity: parseInt(d.opacity, 10)
  };
  var mip = s.plane === "mip";

  function query() {
    return "plane=" + s.plane + "&slice=" + s.slice + "&angle=" + s.angle +
      "&wc=" + Math.round(s.wc) + "&ww=" + Math.round(s.ww) + "&opacity=" + s.opacity;
  }

  function setText(id, text) {
    var el = document.getElementById(id);
    if (el) { el.textContent = text; }
  }

  function setValue(id, value) {
    var el = document.getElementById(id);
    if (el) { el.value = value; }
  }

  // One picture in flight at a time; the latest asked for wins.
  var loading = false, wanted = null;
  function show() {
    var url = d.base + "/" + s.plane + ".png?" + query();
    if (loading) { wanted = url; return; }
    loading = true;
    img.src = url;
    setText("slice-number", String(s.slice));
    setText("angle-index", String(s.angle));
    setText("angle-text", String(Math.round(s.angle * 360 / s.angles)));
    setText("window-text", Math.round(s.wc) + " / " + Math.round(s.ww));
    setValue("slice", s.slice);
    setValue("angle", s.angle);
    setValue("wc", Math.round(s.wc));
    setValue("ww", Math.round(s.ww));
    setValue("opacity", s.opacity);
    img.alt = mip ? "projection at " + Math.round(s.angle * 360 / s.angles) + "°" : s.plane + " slice " + s.slice + " of the volume";
    if (window.history && window.history.replaceState) {
      window.history.replaceState(null, "", window.location.pathname + "?" + query());
    }
  }
  img.addEventListener("load", function () {
    loading = false;
    root.setAttribute("data-shown", img.src);
    if (wanted) { var u = wanted; wanted = null; loading = true; img.src = u; }
  });
  img.addEventListener("error", function () { loading = false; });

  function step(n) {
    if (mip) {
      s.angle = ((s.angle + n) % s.angles + s.angles) % s.angles;
    } else {
      s.slice = Math.max(0, Math.min(s.slices - 1, s.slice + n));
    }
    show();
  }

  document.addEventListener("keydown", function (e) {
    var t = e.target && e.target.tagName;
    if (t === "INPUT" || t === "SELECT" || t === "TEXTAREA") { return; }
    var n = { ArrowRight: 1, ArrowUp: 1, ArrowLeft: -1, ArrowDown: -1, PageUp: 10, PageDown: -10 }[e.key];
    if (n) { e.preventDefault(); step(n); }
  });

  img.addEventListener("wheel", function (e) {
    e.preventDefault();
    step(e.deltaY > 0 ? 1 : -1);
  }, { passive: false });

  // Drag: left-right changes the width, up-down the center (as on a PACS workstation).
  var drag = null;
  img.addEventListener("mousedown", function (e) {
    e.preventDefault();
    drag = { x: e.clientX, y: e.clientY, wc: s.wc, ww: s.ww };
  });
  window.addEventListener("mousemove", function (e) {
    if (!drag) { return; }
    s.ww = Math.max(1, drag.ww + (e.clientX - drag.x) * 4);
    s.wc = drag.wc + (e.clientY - drag.y) * 2;
    show();
  });
  window.addEventListener("mouseup", function () { drag = null; });

  Array.prototype.forEach.call(document.querySelectorAll("a.preset"), function (a) {
    a.addEventListener("click", function (e) {
      e.preventDefault();
      s.wc = parseFloat(a.dataset.wc);
      s.ww = parseFloat(a.dataset.ww);
      show();
    });
  });

  var toggle = document.getElementById("overlay-toggle");
  if (toggle) {
    toggle.addEventListener("click", function (e) {
      e.preventDefault();
      s.opacity = s.opacity > 0 ? 0 : 35;
      toggle.textContent = s.opacity > 0 ? "Hide the overlay" : "Show the overlay";
      show();
    });
  }

  ["prev", "next"].forEach(function (id) {
    var a = document.getElementById(id);
    if (a) {
      a.addEventListener("click", function (e) { e.preventDefault(); step(id === "next" ? 1 : -1); });
    }
  });

  var range = document.getElementById(mip ? "angle" : "slice");
  if (range) {
    range.addEventListener("input", function () {
      if (mip) { s.angle = parseInt(range.value, 10); } else { s.slice = parseInt(range.value, 10); }
      show();
    });
  }

  var form = document.getElementById("controls");
  if (form) {
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      s.wc = parseFloat(document.getElementById("wc").value) || s.wc;
      s.ww = Math.max(1, parseFloat(document.getElementById("ww").value) || s.ww);
      var o = document.getElementById("opacity");
      if (o) { s.opacity = Math.max(0, Math.min(100, parseInt(o.value, 10) || 0)); }
      show();
    });
  }
  root.setAttribute("data-ready", "1");
})();

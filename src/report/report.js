// tokentrail report: zoom, pan and filter the access graph. Reads attributes only (never
// parses markup). On success it marks <body data-report-ready="1"> with the node and edge
// counts, which the browser test checks.
(function () {
  "use strict";
  var body = document.body;
  var svg = document.getElementById("graph-svg");
  if (!svg) {
    body.setAttribute("data-report-ready", "1");
    return;
  }
  var size = 1000;
  var view = { x: 0, y: 0, w: size, h: size };
  var nodes = Array.prototype.slice.call(svg.querySelectorAll(".node"));
  var edges = Array.prototype.slice.call(svg.querySelectorAll(".edge"));
  var filter = document.getElementById("graph-filter");
  var boxes = Array.prototype.slice.call(document.querySelectorAll("input[data-status]"));

  function apply() {
    svg.setAttribute("viewBox", [view.x, view.y, view.w, view.h].join(" "));
  }
  function zoom(factor, cx, cy) {
    var w = Math.min(size * 4, Math.max(size / 20, view.w * factor));
    var k = w / view.w;
    view.x = cx - (cx - view.x) * k;
    view.y = cy - (cy - view.y) * k;
    view.w = w;
    view.h = w;
    apply();
  }
  function toSvg(evt) {
    var r = svg.getBoundingClientRect();
    return {
      x: view.x + ((evt.clientX - r.left) / r.width) * view.w,
      y: view.y + ((evt.clientY - r.top) / r.height) * view.h
    };
  }
  svg.addEventListener("wheel", function (evt) {
    evt.preventDefault();
    var p = toSvg(evt);
    zoom(evt.deltaY > 0 ? 1.2 : 1 / 1.2, p.x, p.y);
  }, { passive: false });
  var drag = null;
  svg.addEventListener("mousedown", function (evt) { drag = toSvg(evt); });
  window.addEventListener("mouseup", function () { drag = null; });
  svg.addEventListener("mousemove", function (evt) {
    if (!drag) { return; }
    var p = toSvg(evt);
    view.x -= p.x - drag.x;
    view.y -= p.y - drag.y;
    apply();
  });
  Array.prototype.forEach.call(document.querySelectorAll("button[data-zoom]"), function (b) {
    b.addEventListener("click", function () {
      var how = b.getAttribute("data-zoom");
      if (how === "reset") {
        view = { x: 0, y: 0, w: size, h: size };
        apply();
      } else {
        zoom(how === "in" ? 1 / 1.5 : 1.5, view.x + view.w / 2, view.y + view.h / 2);
      }
    });
  });

  function refresh() {
    var text = filter ? filter.value.trim().toLowerCase() : "";
    var shown = {};
    boxes.forEach(function (b) { shown[b.getAttribute("data-status")] = b.checked; });
    var matched = {};
    var visible = {};
    nodes.forEach(function (n) {
      var id = n.getAttribute("data-id");
      var match = text === "" || id.toLowerCase().indexOf(text) !== -1;
      matched[id] = match;
      visible[id] = match;
      n.classList.toggle("match", text !== "" && match);
    });
    edges.forEach(function (e) {
      var s = e.getAttribute("data-source");
      var t = e.getAttribute("data-target");
      var on = shown[e.getAttribute("data-status")] !== false && (matched[s] || matched[t]);
      e.classList.toggle("hidden", !on);
      if (on) { visible[s] = true; visible[t] = true; }
    });
    nodes.forEach(function (n) {
      n.classList.toggle("hidden", !visible[n.getAttribute("data-id")]);
    });
  }
  if (filter) { filter.addEventListener("input", refresh); }
  boxes.forEach(function (b) { b.addEventListener("change", refresh); });
  refresh();

  body.setAttribute("data-graph-nodes", String(nodes.length));
  body.setAttribute("data-graph-edges", String(edges.length));
  body.setAttribute("data-report-ready", "1");
})();

/* mloop UI: progressive enhancement over server-rendered pages.
   Charts (uPlot) and graphs (Cytoscape) read their data from <script type="application/json">
   blocks; every change still works as a plain form post without this script. */
(function () {
  "use strict";
  var csrf = function () {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  };
  var css = function (name, fallback) {
    var v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return v || fallback;
  };
  var palette = function (i) { return css("--c" + (i % 6), "#1f77b4"); };

  document.addEventListener("htmx:configRequest", function (e) {
    e.detail.headers["X-CSRF-Token"] = csrf();
  });
  /* A button's data-confirm asks before its form is sent: by htmx for the forms it sends
     (hx-boost), by the browser's own submit otherwise (no script for htmx, or a plain form). */
  var confirmOf = function (submitter) {
    return submitter && submitter.getAttribute ? submitter.getAttribute("data-confirm") : null;
  };
  document.addEventListener("htmx:confirm", function (e) {
    var trigger = e.detail.triggeringEvent;
    var message = confirmOf(trigger && trigger.submitter);
    if (!message) { return; }
    e.preventDefault();
    if (window.confirm(message)) { e.detail.issueRequest(true); }
  });
  document.addEventListener("submit", function (e) {
    if (window.htmx && e.target.closest("[hx-boost=true]")) { return; }
    var message = confirmOf(e.submitter);
    if (message && !window.confirm(message)) { e.preventDefault(); }
  });

  /* ── keyboard: arrows move between the rows of a data table ── */
  document.addEventListener("keydown", function (e) {
    if (e.key !== "ArrowDown" && e.key !== "ArrowUp") { return; }
    var cell = e.target.closest && e.target.closest("table.data tbody tr");
    if (!cell) { return; }
    var next = e.key === "ArrowDown" ? cell.nextElementSibling : cell.previousElementSibling;
    if (!next) { return; }
    var target = next.querySelector("a, input, button") || next;
    if (target === next) { next.setAttribute("tabindex", "-1"); }
    target.focus();
    e.preventDefault();
  });

  /* ── charts ── */
  function smooth(ys, weight) {
    if (!weight) { return ys; }
    var out = new Array(ys.length), last = null;
    for (var i = 0; i < ys.length; i++) {
      var y = ys[i];
      if (y === null || y === undefined) { out[i] = null; continue; }
      last = last === null ? y : last * weight + (1 - weight) * y;
      out[i] = last;
    }
    return out;
  }
  function aligned(spec, weight) {
    var tables = spec.series.map(function (s) { return [s.x, smooth(s.y, weight)]; });
    if (!tables.length) { return [[]]; }
    if (tables.length === 1) { return tables[0]; }
    return uPlot.join(tables);
  }
  function drawChart(holder) {
    var id = holder.getAttribute("data-chart");
    var block = document.getElementById(id);
    if (!block || typeof uPlot === "undefined") { return; }
    var spec = JSON.parse(block.textContent);
    var controls = document.querySelector('[data-controls="' + id + '"]');
    var weight = 0, log = !!spec.log;
    if (controls) {
      var s = controls.querySelector("[name=smooth]");
      var l = controls.querySelector("[name=log]");
      if (s) { weight = parseFloat(s.value) || 0; }
      if (l) { log = l.checked; }
    }
    var time = spec.x === "time";
    var points = spec.kind === "points";
    var series = [{ label: time ? "time" : spec.x }];
    spec.series.forEach(function (s, i) {
      series.push({ label: s.label, stroke: palette(i), width: points ? 0 : 1.5, spanGaps: true,
        points: points ? { show: true, size: 6, fill: palette(i) } : { show: false } });
    });
    var width = Math.max(300, holder.clientWidth || holder.parentNode.clientWidth || 600);
    var opts = {
      title: spec.title || "", width: width, height: points ? 320 : 260,
      scales: { x: { time: time, range: function (u, lo, hi) { var pad = time ? 60 : 1; return lo === hi ? [lo - pad, hi + pad] : [lo, hi]; } }, y: { distr: log ? 3 : 1 } },
      axes: [{ label: time ? "" : spec.x, stroke: css("--muted", "#888"), grid: { stroke: css("--line", "#ddd") } },
             { label: spec.y || "", stroke: css("--muted", "#888"), grid: { stroke: css("--line", "#ddd") } }],
      series: series,
      cursor: { drag: { x: true, y: false } },
      hooks: { setSelect: [], setScale: [function (u, key) { if (key === "x") { zoomed(u, spec, weight); } }] }
    };
    if (time) { spec.series.forEach(function (s) { s.x = s.x.map(function (v) { return v === null ? null : v / 1000; }); }); }
    // The whole x range as sent: a scale over all of it (the first draw, a zoom reset)
    // shows the points the page came with and fetches nothing.
    spec.extent = extent(spec.series);
    spec.series.forEach(function (s) { s.x0 = s.x; s.y0 = s.y; });
    holder.innerHTML = "";
    var plot = new uPlot(opts, aligned(spec, weight), holder);
    holder._plot = plot;
    // a double click shows the whole range again (uPlot alone would fit the zoomed points)
    holder.ondblclick = function () { plot.setScale("x", { min: spec.extent[0], max: spec.extent[1] }); };
    holder.setAttribute("data-points", String(spec.series.reduce(function (n, s) { return n + s.x.length; }, 0)));
    holder.setAttribute("data-drawn", "1");
  }
  function extent(series) {
    var lo = Infinity, hi = -Infinity;
    series.forEach(function (s) {
      s.x.forEach(function (v) { if (v !== null) { if (v < lo) { lo = v; } if (v > hi) { hi = v; } } });
    });
    return [lo, hi];
  }
  function zoomed(u, spec, weight) {
    var lo = u.scales.x.min, hi = u.scales.x.max;
    var pending = spec.series.filter(function (s) { return s.full; });
    if (!pending.length || lo === null || hi === null) { return; }
    var seq = spec.seq = (spec.seq || 0) + 1;  // an answer to an older zoom is dropped
    if (lo <= spec.extent[0] && hi >= spec.extent[1]) {
      if (spec.zoomed) {
        spec.zoomed = false;
        pending.forEach(function (s) { s.x = s.x0; s.y = s.y0; });
        setTimeout(function () { u.setData(aligned(spec, weight), false); }, 0);  // after this redraw
      }
      return;
    }
    spec.zoomed = true;
    var scale = spec.x === "time" ? 1000 : 1;
    Promise.all(pending.map(function (s) {
      var url = s.full + (s.full.indexOf("?") < 0 ? "?" : "&") + "lo=" + (lo * scale) + "&hi=" + (hi * scale);
      return fetch(url, { credentials: "same-origin" }).then(function (r) { return r.ok ? r.json() : null; });
    })).then(function (answers) {
      if (seq !== spec.seq) { return; }
      answers.forEach(function (d, i) {
        if (d) { pending[i].x = spec.x === "time" ? d.x.map(function (v) { return v / 1000; }) : d.x; pending[i].y = d.y; }
      });
      u.setData(aligned(spec, weight), false);
    });
  }
  function drawAll() { document.querySelectorAll("[data-chart]").forEach(drawChart); }
  document.addEventListener("change", function (e) {
    var box = e.target.closest && e.target.closest("[data-controls]");
    if (box) {
      var holder = document.querySelector('[data-chart="' + box.getAttribute("data-controls") + '"]');
      if (holder) { drawChart(holder); }
    }
  });
  document.addEventListener("input", function (e) {
    if (e.target.name === "smooth") {
      var box = e.target.closest("[data-controls]");
      if (box) { drawChart(document.querySelector('[data-chart="' + box.getAttribute("data-controls") + '"]')); }
    }
  });

  /* ── graphs (lineage, pipeline DAGs) ── */
  function drawGraph(holder) {
    var block = document.getElementById(holder.getAttribute("data-graph"));
    if (!block || typeof cytoscape === "undefined") { return; }
    var spec = JSON.parse(block.textContent);
    var elements = spec.nodes.map(function (n) { return { data: n, classes: (n.kind || "") + " " + (n.status || "") }; })
      .concat(spec.edges.map(function (e, i) { return { data: { id: "e" + i, source: e.source, target: e.target, label: e.label || "" } }; }));
    var cy = cytoscape({
      container: holder, elements: elements,
      layout: { name: "breadthfirst", directed: true, spacingFactor: 1.1, roots: spec.roots && spec.roots.length ? spec.roots : undefined },
      style: [
        { selector: "node", style: { "label": "data(label)", "font-size": 10, "color": css("--fg", "#222"),
          "text-wrap": "wrap", "text-max-width": 140, "text-valign": "bottom", "text-margin-y": 4,
          "background-color": css("--c0", "#1f77b4"), "width": 18, "height": 18 } },
        { selector: "node.data", style: { "shape": "round-rectangle", "background-color": css("--c2", "#2ca02c") } },
        { selector: "node.run, node.pipeline, node.step", style: { "shape": "ellipse", "background-color": css("--c0", "#1f77b4") } },
        { selector: "node.model", style: { "shape": "diamond", "background-color": css("--c3", "#9467bd") } },
        { selector: "node.deployment", style: { "shape": "hexagon", "background-color": css("--c4", "#ff7f0e") } },
        { selector: "node.alert, node.failed", style: { "background-color": css("--bad", "#c62828") } },
        { selector: "node.cached", style: { "background-color": css("--warn", "#9a6700") } },
        { selector: "node.focus", style: { "border-width": 3, "border-color": css("--fg", "#222") } },
        { selector: "edge", style: { "width": 1.5, "curve-style": "bezier", "target-arrow-shape": "triangle",
          "line-color": css("--muted", "#999"), "target-arrow-color": css("--muted", "#999"),
          "label": "data(label)", "font-size": 8, "color": css("--muted", "#999"), "text-rotation": "autorotate" } }
      ]
    });
    cy.on("tap", "node", function (e) { var href = e.target.data("href"); if (href) { window.location.href = href; } });
    holder._cy = cy;
    holder.setAttribute("data-drawn", "1");
  }
  function drawGraphs() { document.querySelectorAll("[data-graph]").forEach(drawGraph); }

  var ready = function () { drawAll(); drawGraphs(); };
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", ready); } else { ready(); }
  document.addEventListener("htmx:afterSettle", ready);
  window.mloopUI = { drawChart: drawChart, drawGraph: drawGraph };
})();

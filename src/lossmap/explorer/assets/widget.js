/* lossmap lesson widget: the page written by `lossmap widget` (no server).
 * Uses plotly.js and the explorer's formulas (window.lossmap, lossmap.js),
 * both inlined in the same file; the data are in #lesson-data. */
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("lesson-data").textContent);
  const L = window.lossmap;
  const W = {loss: D.order[0], point: D.point.slice(), playing: false, curve: null};
  // no zoom bar: clicks choose (w, b), and on a touch screen the bar is
  // always shown, over the titles (the fit's title holds w, b and the loss)
  const CONFIG = {displaylogo: false, displayModeBar: false, responsive: true};
  window.widget = W;
  const land = document.getElementById("landscape");
  const fit = document.getElementById("fit");

  function uidIndex(gd, uid) {
    for (let i = 0; i < gd.data.length; i++) if (gd.data[i].uid === uid) return i;
    return -1;
  }
  function pathIdx(gd) {
    const out = [];
    gd.data.forEach(function (t, i) {
      if (typeof t.uid === "string" && t.uid.indexOf("path-") === 0) out.push(i);
    });
    return out;
  }

  /** (w, b) under a pointer event, or null outside the plot area. */
  function pointerData(ev) {
    const fl = land._fullLayout;
    if (ev.changedTouches && ev.changedTouches.length) ev = ev.changedTouches[0];
    if (!fl || !fl._size || !fl.xaxis || typeof ev.clientX !== "number") return null;
    const r = land.getBoundingClientRect();
    const px = ev.clientX - r.left - fl._size.l, py = ev.clientY - r.top - fl._size.t;
    if (px < 0 || py < 0 || px > fl._size.w || py > fl._size.h) return null;
    return [fl.xaxis.p2d(px), fl.yaxis.p2d(py)];
  }

  /** (w, b) chosen: marker, fit curve, residuals and readout, all local. */
  function setPoint(w, b) {
    W.point = [w, b];
    const spec = D.views[W.loss].spec;
    const ic = uidIndex(land, "current");
    if (ic >= 0) Plotly.restyle(land, {x: [[w]], y: [[b]]}, [ic]);
    const cy = spec.curve_x.map(function (x) { return L.predict(spec.model, x, w, b); });
    const rx = [], ry = [];
    for (let i = 0; i < spec.x.length; i++) {
      rx.push(spec.x[i], spec.x[i], null);
      ry.push(spec.y[i], L.predict(spec.model, spec.x[i], w, b), null);
    }
    const loss = L.loss(spec, w, b);
    Plotly.update(fit, {x: [rx, spec.curve_x], y: [ry, cy]},
      {"title.text": "w = " + w.toFixed(3) + ", b = " + b.toFixed(3) +
        "   loss = " + L.g4(loss)},
      [uidIndex(fit, "residuals"), uidIndex(fit, "prediction")]);
    W.curve = cy;
    document.getElementById("readout").textContent =
      "w = " + w.toFixed(4) + "   b = " + b.toFixed(4) + "   " +
      D.views[W.loss].label + " = " + L.g4(loss);
  }

  function showLoss(name) {
    W.loss = name;
    W.playing = false;
    W.token = (W.token || 0) + 1;  // a replay under way stops
    const v = D.views[name];
    document.querySelectorAll("#losses button").forEach(function (b) {
      b.classList.toggle("on", b.dataset.loss === name);
    });
    document.getElementById("status").textContent =
      v.runs.map(function (r) { return r.status; }).join("\n");
    return Plotly.react(land, v.figure.data, v.figure.layout, CONFIG)
      .then(function () { setPoint(W.point[0], W.point[1]); });
  }

  /** Grow the optimizer paths of the current loss over about two seconds. */
  function replay() {
    const runs = D.views[W.loss].runs;
    const old = pathIdx(land);
    if (old.length) Plotly.deleteTraces(land, old);
    const colors = D.views[W.loss].spec.colors;
    const xs = runs.map(function (r) { return r.params.map(function (p) { return p[0]; }); });
    const ys = runs.map(function (r) { return r.params.map(function (p) { return p[1]; }); });
    Plotly.addTraces(land, runs.map(function (r, i) {
      return {type: "scatter", mode: "lines", x: [], y: [], uid: "path-" + i,
        name: r.label, line: {color: colors[i % colors.length], width: 2.5}};
    }));
    const idx = pathIdx(land);
    const longest = Math.max.apply(null, xs.map(function (x) { return x.length; }));
    const frames = Math.min(longest, 50);
    let f = 0;
    W.playing = true;
    // one animation at a time: a second click restarts it (two chains of
    // ticks drew over each other, and the first to end stopped the other)
    const token = W.token = (W.token || 0) + 1;
    W.ticks = 0;
    land.dataset.replay = "playing";
    const tick = function () {
      if (!W.playing || W.token !== token) return;
      f += 1;
      W.ticks += 1;
      const k = Math.round(f * longest / frames);
      Plotly.restyle(land, {
        x: xs.map(function (x) { return x.slice(0, k); }),
        y: ys.map(function (y) { return y.slice(0, k); }),
      }, idx);
      if (f < frames) { setTimeout(tick, 40); } else {
        W.playing = false;
        land.dataset.replay = "done";
      }
    };
    tick();
  }

  const bar = document.getElementById("losses");
  D.order.forEach(function (name) {
    const b = document.createElement("button");
    b.textContent = D.views[name].label;
    b.dataset.loss = name;
    b.addEventListener("click", function () { showLoss(name); });
    bar.appendChild(b);
  });
  document.getElementById("replay").addEventListener("click", replay);
  Plotly.newPlot(fit, D.fit.data, D.fit.layout, CONFIG).then(function () {
    return showLoss(W.loss);
  }).then(function () {
    land.on("plotly_click", function (ev) {
      // the point under the pointer, as in the explorer: the clicked trace's
      // point would be a heatmap cell's centre, or θ*, θ₀ or a path vertex
      // when the click lands within Plotly's hover distance of one
      const at = ev && ev.event ? pointerData(ev.event) : null;
      if (at) {
        setPoint(at[0], at[1]);
      } else if (ev && ev.points && ev.points.length) {
        setPoint(ev.points[0].x, ev.points[0].y);
      }
    });
    document.body.dataset.ready = "1";
  });
})();

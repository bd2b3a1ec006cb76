/* lossmap explorer: what the page does without waiting for the server.
 *
 * - The model's prediction and the loss at (w, b), from the data and the
 *   formulas of lossmap.toy (models) and lossmap.losses (mirrored here; the
 *   tests compare them with Python's), so a click or a drag moves the
 *   current point, the fit curve, its residuals and the readout in the same
 *   frame; the server's answer confirms them. The point last chosen wins:
 *   a landscape computed while the user clicked is drawn at the point its
 *   request carried, so the page puts the marker back (keepPoint).
 * - Optimizer paths: drawn from the runs the server computed, animated by
 *   growing only the path traces (the heatmap and contours stay), with
 *   play/pause and a step slider; the current point and the fit follow the
 *   chosen step.
 *
 * Traces are found by their uid, never by position.
 */
(function () {
  "use strict";
  const L = {};
  const state = {
    spec: null,        // model + data + loss of the page (from the server)
    runs: null,        // {key, id, runs: [{label, x, y, loss, ...}]}
    step: 0,
    maxStep: 0,
    playing: false,
    drawnRun: null,
    dragging: false,
    pending: null,
    point: null,       // the point last chosen (a click, a drag, the store)
  };
  L.state = state;

  // ------------------------------------------------------------ formulas
  const LOG2 = Math.log(2);
  function predict(model, x, w, b) {
    const z = w * x + b;
    if (model === "line") return z;
    if (model === "tanh") return Math.tanh(z);
    if (model === "logistic") return 1 / (1 + Math.exp(-z));
    return NaN;
  }
  function elementLoss(spec, p, y, z) {
    const r = p - y;
    switch (spec.loss) {
      case "mse": return r * r;
      case "mae": return Math.abs(r);
      case "huber": {
        const a = Math.abs(r), d = spec.delta;
        return a <= d ? 0.5 * r * r : d * (a - 0.5 * d);
      }
      case "log_cosh": {
        const a = Math.abs(r);
        if (a < 20) { const s = Math.sinh(0.5 * a); return Math.log1p(2 * s * s); }
        return a + Math.log1p(Math.exp(-2 * a)) - LOG2;
      }
      case "bce":
        if (spec.model === "logistic") {  // BCE with logits, exact at any z
          return Math.max(z, 0) - y * z + Math.log1p(Math.exp(-Math.abs(z)));
        }
        return -(y * Math.log(p) + (1 - y) * Math.log1p(-p));
      default: return NaN;
    }
  }
  L.predict = predict;
  /** The landscape's value at (w, b): mean loss over the data + penalties. */
  L.loss = function (spec, w, b) {
    const xs = spec.x, ys = spec.y;
    let total = 0;
    for (let i = 0; i < xs.length; i++) {
      const z = w * xs[i] + b;
      total += elementLoss(spec, predict(spec.model, xs[i], w, b), ys[i], z);
    }
    return total / xs.length + spec.l2 * (w * w + b * b) +
      (spec.l1 || 0) * (Math.abs(w) + Math.abs(b));
  };
  L.supported = function (spec) {
    return !!spec && spec.kind === "problem" &&
      ["line", "tanh", "logistic"].includes(spec.model) &&
      ["mse", "mae", "huber", "log_cosh", "bce"].includes(spec.loss);
  };

  // ------------------------------------------------------------- helpers
  function plot(id) {
    return document.querySelector("#" + id + " .js-plotly-plot");
  }
  function uidIndex(gd, uid) {
    if (!gd || !gd.data) return -1;
    for (let i = 0; i < gd.data.length; i++) {
      if (gd.data[i].uid === uid) return i;
    }
    return -1;
  }
  function fmt(v, digits) {
    if (!isFinite(v)) return String(v);
    return Number(v.toPrecision(digits)).toString();
  }
  function g4(v) {  // like Python's {:.4g}
    if (!isFinite(v)) return String(v);
    if (v === 0) return "0";
    const e = Math.floor(Math.log10(Math.abs(v)));
    if (e < -4 || e >= 4) {
      return v.toExponential(3).replace(/\.?0+e/, "e").replace(/e([+-])(\d)$/, "e$10$2");
    }
    return fmt(v, 4);
  }
  L.g4 = g4;

  /** The drawn group of the trace with ``uid`` (an SVG <g>), if any. */
  function traceGroup(gd, uid) {
    let found = null;
    gd.querySelectorAll(".scatterlayer .trace").forEach(function (g) {
      const d = g.__data__;
      if (d && d[0] && d[0].trace && d[0].trace.uid === uid) found = g;
    });
    return found;
  }
  /** An SVG path through data points (null starts a new piece). */
  function pathD(fl, xs, ys) {
    const xa = fl.xaxis, ya = fl.yaxis;
    let d = "", pen = false;
    for (let i = 0; i < xs.length; i++) {
      const x = xs[i], y = ys[i];
      if (x === null || y === null || !isFinite(x) || !isFinite(y)) { pen = false; continue; }
      const px = xa.c2p(x), py = ya.c2p(y);
      if (!isFinite(px) || !isFinite(py)) { pen = false; continue; }
      d += (pen ? "L" : "M") + px.toFixed(1) + "," + py.toFixed(1);
      pen = true;
    }
    return d;
  }
  /** Redraw a line trace's SVG directly (no Plotly call): a few 0.1 ms. */
  function setLine(gd, uid, xs, ys) {
    const g = traceGroup(gd, uid);
    if (!g) return false;
    const lines = g.querySelectorAll("path.js-line");
    if (!lines.length) return false;
    lines[0].setAttribute("d", pathD(gd._fullLayout, xs, ys));
    for (let i = 1; i < lines.length; i++) lines[i].setAttribute("d", "");
    // and the figure's own record, without a redraw (hover, later redraws)
    const i = uidIndex(gd, uid);
    if (i >= 0 && !state.playing) {
      gd.data[i].x = xs; gd.data[i].y = ys;
      if (gd._fullData[i]) { gd._fullData[i].x = xs; gd._fullData[i].y = ys; }
    }
    return true;
  }

  // ----------------------------------------------------- the current point
  /** Move the current-point marker of the 2-D landscape without a replot. */
  function moveMarker(w, b) {
    const gd = plot("landscape");
    if (!gd || !gd._fullLayout || !gd._fullData) return;
    const idx = uidIndex(gd, "current");
    if (idx < 0) return;
    const is3d = gd._fullData[0] && gd._fullData[0].type === "surface";
    if (is3d) return;
    const fl = gd._fullLayout;
    gd.querySelectorAll(".scatterlayer .trace").forEach(function (g) {
      const d = g.__data__;
      const pt = g.querySelector(".point");
      if (d && d[0] && d[0].trace && d[0].trace.uid === "current" && pt) {
        pt.setAttribute("transform", "translate(" + fl.xaxis.d2p(w) + "," +
          fl.yaxis.d2p(b) + ")");
      }
    });
    const t = gd.data[idx]; if (t) { t.x = [w]; t.y = [b]; }
    const f = gd._fullData[idx]; if (f) { f.x = [w]; f.y = [b]; }
    const c = gd.calcdata && gd.calcdata[idx];
    if (c && c[0]) { c[0].x = w; c[0].y = b; }
  }

  /** Fit curve, residuals, title and readout at (w, b), in the browser. */
  function showFit(w, b) {
    const spec = state.spec;
    const ro = document.getElementById("readout");
    if (!L.supported(spec)) return false;
    const loss = L.loss(spec, w, b);
    if (ro) {
      ro.textContent = "w = " + w.toFixed(4) + "   b = " + b.toFixed(4) +
        "   loss = " + g4(loss);
    }
    const gd = plot("fit");
    if (!gd || !gd._fullLayout || !gd.data) return true;
    const cy = spec.curve_x.map(function (x) { return predict(spec.model, x, w, b); });
    const rx = [], ry = [];
    for (let i = 0; i < spec.x.length; i++) {
      rx.push(spec.x[i], spec.x[i], null);
      ry.push(spec.y[i], predict(spec.model, spec.x[i], w, b), null);
    }
    // straight into the SVG: Plotly.update would redraw the whole panel
    const ok = setLine(gd, "prediction", spec.curve_x, cy) &&
      setLine(gd, "residuals", rx, ry);
    const title = "w = " + w.toFixed(3) + ", b = " + b.toFixed(3) +
      "   loss = " + g4(loss);
    const tEl = gd.querySelector(".gtitle");
    if (ok && tEl) {
      tEl.textContent = title;
    } else if (window.Plotly) {
      const iRes = uidIndex(gd, "residuals"), iPred = uidIndex(gd, "prediction");
      if (iRes >= 0 && iPred >= 0) {
        window.Plotly.update(gd, {x: [rx, spec.curve_x], y: [ry, cy]},
          {"title.text": title}, [iRes, iPred]);
      }
    }
    gd.dataset.w = String(w);
    gd.dataset.b = String(b);
    gd.dataset.curve = JSON.stringify(cy.slice(0, 3));
    return true;
  }
  L.showFit = showFit;

  /** The height of the 3-D surface at (w, b), interpolated in its grid. */
  function surfaceAt(gd, w, b) {
    const s = gd._fullData[0], z = s.z;
    const cell = function (a, v) {  // i with a[i] <= v <= a[i + 1], clamped
      let i = 0;
      while (i < a.length - 2 && a[i + 1] < v) i++;
      return [i, Math.min(Math.max((v - a[i]) / (a[i + 1] - a[i]), 0), 1)];
    };
    const [i, u] = cell(s.x, w), [j, v] = cell(s.y, b);
    return (1 - v) * ((1 - u) * z[j][i] + u * z[j][i + 1]) +
      v * ((1 - u) * z[j + 1][i] + u * z[j + 1][i + 1]);
  }

  /** Put the current-point marker at the point last chosen, if a figure
   *  drew it elsewhere: a landscape computed while the user clicked was
   *  drawn at the point its request carried. The point then goes to the
   *  server again, which redraws what it draws through it (the Hessian
   *  segments). */
  L.keepPoint = function () {
    const gd = plot("landscape"), p = state.point;
    const idx = uidIndex(gd, "current");
    if (!p || idx < 0 || !gd._fullData || !gd._fullData[idx]) return;
    const t = gd._fullData[idx];
    if (t.x && t.x[0] === p[0] && t.y[0] === p[1]) return;
    if (is2d(gd)) {
      moveMarker(p[0], p[1]);
    } else if (window.Plotly) {
      window.Plotly.restyle(gd, {x: [[p[0]]], y: [[p[1]]],
        z: [[surfaceAt(gd, p[0], p[1])]]}, [idx]);
    }
    if (!state.dragging && window.dash_clientside.set_props) {
      window.dash_clientside.set_props("point", {data: [p[0], p[1]]});
    }
  };

  /** Everything that follows the current point, now; the server later. */
  L.setPoint = function (w, b, confirm) {
    state.point = [w, b];
    moveMarker(w, b);
    showFit(w, b);
    if (confirm && window.dash_clientside && window.dash_clientside.set_props) {
      window.dash_clientside.set_props("point", {data: [w, b]});
    }
  };

  // ---------------------------------------------------- click and drag
  function dataAt(gd, ev) {
    const fl = gd._fullLayout;
    if (!fl || !fl.xaxis || !fl._size) return null;
    const r = gd.getBoundingClientRect();
    const px = ev.clientX - r.left - fl._size.l;
    const py = ev.clientY - r.top - fl._size.t;
    if (px < 0 || py < 0 || px > fl._size.w || py > fl._size.h) return null;
    return [fl.xaxis.p2d(px), fl.yaxis.p2d(py)];
  }
  function is2d(gd) {
    return gd && gd._fullData && gd._fullData[0] &&
      gd._fullData[0].type === "heatmap";
  }
  function onDown(ev) {
    const gd = plot("landscape");
    if (!is2d(gd) || ev.button > 0) return;
    const p = dataAt(gd, ev);
    if (!p) return;
    ev.preventDefault();
    L.pause();
    state.dragging = true;
    gd.classList.add("dragging");
    try { ev.target.setPointerCapture(ev.pointerId); } catch (e) { /* none */ }
    L.setPoint(p[0], p[1], false);
    state.last = p;
  }
  function hovering() {
    const box = document.querySelector("#overlays input[value=hover]");
    return !!box && box.checked;
  }
  function onMove(ev) {
    if (!state.dragging && hovering() && !state.playing) {
      // hover mode: follow the pointer; the server confirms once it rests
      const gd = plot("landscape");
      if (!is2d(gd)) return;
      const p = dataAt(gd, ev);
      if (!p) return;
      state.pending = p;
      if (!state.frame) {
        state.frame = requestAnimationFrame(function () {
          state.frame = null;
          if (!state.pending) return;
          const q = state.pending; state.pending = null;
          L.setPoint(q[0], q[1], false);
          state.last = q;
          state.updates = (state.updates || 0) + 1;
          clearTimeout(state.rest);
          state.rest = setTimeout(function () { L.setPoint(q[0], q[1], true); }, 250);
        });
      }
      return;
    }
    if (!state.dragging) return;
    const gd = plot("landscape");
    const fl = gd && gd._fullLayout;
    if (!fl) return;
    const r = gd.getBoundingClientRect();
    const px = Math.min(Math.max(ev.clientX - r.left - fl._size.l, 0), fl._size.w);
    const py = Math.min(Math.max(ev.clientY - r.top - fl._size.t, 0), fl._size.h);
    state.pending = [fl.xaxis.p2d(px), fl.yaxis.p2d(py)];
    if (!state.frame) {
      state.frame = requestAnimationFrame(function () {
        state.frame = null;
        if (state.pending) {
          const p = state.pending; state.pending = null;
          L.setPoint(p[0], p[1], false);
          state.last = p;
          state.updates = (state.updates || 0) + 1;
        }
      });
    }
  }
  function onUp() {
    if (!state.dragging) return;
    state.dragging = false;
    const gd = plot("landscape");
    if (gd) gd.classList.remove("dragging");
    if (state.pending) { state.last = state.pending; state.pending = null; }
    if (state.last) L.setPoint(state.last[0], state.last[1], true);
  }
  /** A click on the fit panel: its data coordinates go to the server,
   *  which adds (or deletes) a data point there. */
  function nearestData(gd, ev) {
    // a data point within 12 px of the pointer: it is dragged, not added
    const spec = state.spec, fl = gd._fullLayout;
    if (!spec || !spec.x || !fl) return -1;
    const r = gd.getBoundingClientRect();
    let best = -1, dist = 12;
    for (let i = 0; i < spec.x.length; i++) {
      const px = r.left + fl._size.l + fl.xaxis.d2p(spec.x[i]);
      const py = r.top + fl._size.t + fl.yaxis.d2p(spec.y[i]);
      const d = Math.hypot(px - ev.clientX, py - ev.clientY);
      if (d < dist) { dist = d; best = i; }
    }
    return best;
  }
  function onFitDown(ev) {
    const gd = plot("fit");
    if (!gd || ev.button > 0) return;
    const p = dataAt(gd, ev);
    if (!p || !window.dash_clientside || !window.dash_clientside.set_props) return;
    const k = nearestData(gd, ev);
    if (k >= 0) {  // drag that point; it moves on release
      state.fitDrag = {from: [state.spec.x[k], state.spec.y[k]], to: p};
      try { ev.target.setPointerCapture(ev.pointerId); } catch (e) { /* none */ }
      ev.preventDefault();
      return;
    }
    window.dash_clientside.set_props("fit-click", {data: [p[0], p[1], Date.now()]});
  }
  function onFitMove(ev) {
    if (!state.fitDrag) return;
    const gd = plot("fit");
    const fl = gd && gd._fullLayout;
    if (!fl) return;
    const r = gd.getBoundingClientRect();
    const px = ev.clientX - r.left - fl._size.l, py = ev.clientY - r.top - fl._size.t;
    state.fitDrag.to = [fl.xaxis.p2d(px), fl.yaxis.p2d(py)];
    const g = traceGroup(gd, "data");
    const pts = g && g.querySelectorAll(".point");
    if (pts) {  // move the dragged marker under the pointer
      const spec = state.spec;
      for (let i = 0; i < spec.x.length; i++) {
        if (spec.x[i] === state.fitDrag.from[0] && spec.y[i] === state.fitDrag.from[1] && pts[i]) {
          pts[i].setAttribute("transform", "translate(" + px + "," + py + ")");
        }
      }
    }
  }
  function onFitUp() {
    const drag = state.fitDrag;
    state.fitDrag = null;
    if (!drag || !window.dash_clientside.set_props) return;
    window.dash_clientside.set_props("fit-click", {data: [drag.to[0], drag.to[1],
      Date.now(), drag.from[0], drag.from[1]]});
  }
  /** Pointer handlers on the graph hosts, once per element. dcc.Graph
   *  replaces its host element: a placeholder stands in until plotly.js has
   *  loaded, and a tab coming back mounts a new one. So this runs again on
   *  every change to the page's tree (see the observer below), not once. */
  L.attach = function () {
    const fit = document.getElementById("fit");
    if (fit && !fit.dataset.lossmapAttached) {
      fit.dataset.lossmapAttached = "1";
      fit.addEventListener("pointerdown", onFitDown);
      fit.addEventListener("pointermove", onFitMove);
      fit.addEventListener("pointerup", onFitUp);
      fit.addEventListener("pointercancel", onFitUp);
    }
    const host = document.getElementById("landscape");
    if (!host || host.dataset.lossmapAttached) return;
    host.dataset.lossmapAttached = "1";
    host.addEventListener("pointerdown", onDown);
    host.addEventListener("pointermove", onMove);
    host.addEventListener("pointerup", onUp);
    host.addEventListener("pointercancel", onUp);
  };

  // --------------------------------------------------------- the paths
  function heightOf(meta, v) {
    if (!meta || !meta.log) return v;
    return Math.log10(Math.max(v, meta.floor));
  }
  function cutAtGrid(run, fl) {
    // rows up to the first one outside the drawn region (3-D keeps its extent)
    const xr = fl.scene.xaxis.range, yr = fl.scene.yaxis.range;
    let n = run.x.length;
    for (let i = 0; i < run.x.length; i++) {
      const x = run.x[i], y = run.y[i];
      if (x === null || y === null || x < xr[0] || x > xr[1] || y < yr[0] || y > yr[1]) {
        n = i; break;
      }
    }
    return n;
  }
  function pathTraces(gd, runs) {
    const is3d = !is2d(gd);
    const meta = (gd.layout && gd.layout.meta) || {};
    return runs.map(function (r, i) {
      const color = state.colors[i % state.colors.length];
      if (is3d) {
        return {type: "scatter3d", mode: "lines", x: [], y: [], z: [],
          line: {color: color, width: 6}, name: r.label, uid: "path-" + i,
          hovertemplate: r.label + "<br>%{x:.3f}, %{y:.3f}<extra></extra>"};
      }
      // whole paths first, so each has its SVG line to animate
      // markers only where they can be told apart (and drawn quickly)
      return {type: "scatter", mode: r.n > 300 ? "lines" : "lines+markers",
        x: r.x.slice(0, r.n),
        y: r.y.slice(0, r.n),
        line: {color: color, width: 2.5},
        marker: {size: 5, color: color, line: {color: "white", width: 0.6}},
        name: r.label, uid: "path-" + i,
        hovertemplate: r.label + " (%{x:.3f}, %{y:.3f})<extra></extra>",
        meta: {log: meta.log}};
    });
  }
  function pathIndices(gd) {
    const out = [];
    (gd.data || []).forEach(function (t, i) {
      if (typeof t.uid === "string" && t.uid.indexOf("path-") === 0) out.push(i);
    });
    return out;
  }

  /** Show every path up to step k (and the followed point at step k,
   *  unless ``still``: the paths redrawn on a new figure). */
  L.showStep = function (k, fast, still) {
    const gd = plot("landscape");
    const runs = state.runs && state.runs.runs;
    if (!gd || !runs || !window.Plotly) return;
    const idx = pathIndices(gd);
    if (idx.length !== runs.length) return;
    k = Math.max(0, Math.min(k, state.maxStep));
    state.step = k;
    const is3d = !is2d(gd);
    const meta = (gd.layout && gd.layout.meta) || {};
    const xs = [], ys = [], zs = [];
    runs.forEach(function (r) {
      let n = Math.min(k + 1, r.n);
      if (is3d) n = Math.min(n, r.inGrid);
      xs.push(r.x.slice(0, n));
      ys.push(r.y.slice(0, n));
      if (is3d) zs.push(r.loss.slice(0, n).map(function (v) { return heightOf(meta, v); }));
    });
    if (!is3d && fast) {
      // while playing: move only the lines' SVG; markers come back at the end
      // and at most ~300 vertices per path: the full path comes at the end
      runs.forEach(function (r, i) {
        const g = traceGroup(gd, "path-" + i);
        if (g) {
          const pts = g.querySelector(".points");
          if (pts) pts.style.display = "none";
        }
        let px = xs[i], py = ys[i];
        const stride = Math.ceil(px.length / 300);
        if (stride > 1) {
          const sx = [], sy = [];
          for (let j = 0; j < px.length; j += stride) { sx.push(px[j]); sy.push(py[j]); }
          sx.push(px[px.length - 1]); sy.push(py[py.length - 1]);
          px = sx; py = sy;
        }
        setLine(gd, "path-" + i, px, py);
      });
    } else {
      const upd = is3d ? {x: xs, y: ys, z: zs} : {x: xs, y: ys};
      window.Plotly.restyle(gd, upd, idx);
      gd.querySelectorAll(".scatterlayer .points").forEach(function (p) {
        p.style.display = "";
      });
    }
    const lab = document.getElementById("step-label");
    if (lab) lab.textContent = "step " + k + " / " + state.maxStep;
    // the current point and the fit follow the first run
    const r0 = runs[0];
    const j = Math.min(k, r0.n - 1);
    if (!still && j >= 0 && r0.x[j] !== null && r0.y[j] !== null) {
      moveMarker(r0.x[j], r0.y[j]);
      showFit(r0.x[j], r0.y[j]);
    }
    const lc = plot("loss-curves");
    if (!fast && lc && lc._fullLayout) {  // a relayout redraws every curve
      window.Plotly.relayout(lc, {shapes: [{type: "line", xref: "x", yref: "paper",
        x0: k, x1: k, y0: 0, y1: 1, line: {color: "#888", width: 1, dash: "dot"}}]});
    }
  };

  function setSlider(k) {
    if (window.dash_clientside && window.dash_clientside.set_props) {
      window.dash_clientside.set_props("step", {value: k});
    }
  }
  function setPlayLabel() {
    const b = document.getElementById("play");
    if (b) b.textContent = state.playing ? "❚❚ pause" : "▶ play";
  }

  /** Play from the current step (from 0 at the end) in about 2.5 s. */
  L.play = function () {
    if (!state.runs || !state.maxStep) return;
    if (state.step >= state.maxStep) state.step = 0;
    state.playing = true;
    const token = state.playToken = (state.playToken || 0) + 1;
    state.tickMs = [];
    state.playStart = performance.now();
    setPlayLabel();
    const host = document.getElementById("landscape");
    if (host) host.dataset.animated = "playing";
    const frames = Math.min(state.maxStep, 60);
    const stride = state.maxStep / frames;
    let f = Math.round(state.step / stride);
    const tick = function () {
      // a newer play (or a pause) owns the animation now
      if (!state.playing || state.playToken !== token) return;
      f += 1;
      const k = Math.min(state.maxStep, Math.round(f * stride));
      const t0 = performance.now();
      L.showStep(k, k < state.maxStep);
      state.tickMs.push(performance.now() - t0);
      if (k >= state.maxStep) {
        state.playMs = performance.now() - state.playStart;
        state.playing = false;
        setPlayLabel();
        setSlider(k);
        if (host) host.dataset.animated = String(state.runs.id);
        const r0 = state.runs.runs[0], j = Math.min(k, r0.n - 1);
        if (r0.x[j] !== null) L.setPoint(r0.x[j], r0.y[j], true);
        return;
      }
      requestAnimationFrame(function () { setTimeout(tick, 16); });
    };
    requestAnimationFrame(tick);
  };
  L.pause = function () {
    if (!state.playing) return;
    state.playing = false;
    setPlayLabel();
    L.showStep(state.step);  // a real redraw: markers and hover back
    setSlider(state.step);
    const host = document.getElementById("landscape");
    if (host && state.runs) host.dataset.animated = String(state.runs.id);
  };

  /** Enable the play button through Dash: React ignores clicks on a button
   *  whose *prop* says disabled, whatever the DOM attribute says. */
  function enablePlay(on) {
    const pb = document.getElementById("play");
    if (!pb || pb.disabled === !on) return;
    if (window.dash_clientside && window.dash_clientside.set_props) {
      window.dash_clientside.set_props("play", {disabled: !on});
    }
    pb.disabled = !on;
  }

  /** Move the "start θ₀" marker (in the figure's data, drawn at the next
   *  redraw) to the runs' start: the point they were run from. */
  function placeStart(gd, stored, r0) {
    const i = uidIndex(gd, "start");
    const s = Array.isArray(stored.start) && stored.start.length === 2
      ? stored.start : [r0.x[0], r0.y[0]];
    if (i < 0 || s[0] === null || s[1] === null) return;
    const t = gd.data[i];
    t.x = [s[0]]; t.y = [s[1]];
    if (!is2d(gd)) {
      const meta = (gd.layout && gd.layout.meta) || {};
      const v = r0.loss && r0.loss.length ? r0.loss[0] : null;
      if (v === null || !isFinite(v)) { t.x = []; t.y = []; t.z = []; return; }
      t.z = [heightOf(meta, v)];
      t.customdata = [v];
    }
  }

  /** Put the runs onto the landscape (path traces found by uid). */
  L.drawRuns = function (stored, fig) {
    const gd = plot("landscape");
    if (!gd || !window.Plotly || !gd._fullLayout) return false;
    const meta = (gd.layout && gd.layout.meta) || {};
    const valid = stored && stored.runs && stored.runs.length &&
      JSON.stringify(stored.key) === JSON.stringify(meta.key);
    const old = pathIndices(gd);
    const fresh = valid && state.drawnRun !== stored.id;
    // a redraw (e.g. the point marker moving) must not strand a playback
    const wasPlaying = state.playing;
    state.playing = false;
    if (!valid) {
      state.runs = null; state.maxStep = 0;
      if (old.length) window.Plotly.deleteTraces(gd, old);
      enablePlay(false);
      return true;
    }
    const runs = stored.runs.map(function (r) {
      const x = r.params.map(function (p) { return p[0]; });
      const y = r.params.map(function (p) { return p[1]; });
      let n = x.length;
      for (let i = 0; i < x.length; i++) {
        if (x[i] === null || y[i] === null) { n = i; break; }
      }
      const run = {label: r.label, x: x, y: y, loss: r.loss, n: n, inGrid: n};
      if (!is2d(gd)) run.inGrid = Math.min(n, cutAtGrid(run, gd._fullLayout));
      return run;
    });
    state.runs = {key: stored.key, id: stored.id, runs: runs};
    state.maxStep = Math.max.apply(null, runs.map(function (r) { return r.n - 1; }));
    if (old.length) window.Plotly.deleteTraces(gd, old);
    // θ₀ marks where these runs started (the server's figure has the
    // default start); set before addTraces, whose redraw then draws it
    placeStart(gd, stored, runs[0]);
    window.Plotly.addTraces(gd, pathTraces(gd, runs));
    enablePlay(true);
    if (fresh) {
      state.drawnRun = stored.id;
      state.step = 0;
      L.play();
    } else if (wasPlaying) {
      L.play();  // carry on from the current step
    } else {  // the same runs on a new figure: the point stays where it is
      L.showStep(Math.min(state.step, state.maxStep) || state.maxStep, false, true);
    }
    return true;
  };

  // ------------------------------------------------- the state in the URL
  const STATE_NAMES = {"grid-steps": "grid", "opt-steps": "steps",
    "batch-size": "batch", "data-edit": "data"};
  /** Write every control into ?s=<base64url JSON> (no reload, no history). */
  function share(cbx) {
    const state = {};
    const region = {};
    let chosen = null;
    const hyper = {};
    (cbx.inputs_list || []).forEach(function (item) {
      const list = Array.isArray(item) ? item : [item];
      list.forEach(function (inp) {
        const id = inp.id;
        if (typeof id === "object") {
          if (id.type === "opt-on") {
            chosen = chosen || [];
            if (Array.isArray(inp.value) && inp.value.length) chosen.push(id.name);
          } else if (id.type === "opt-hyper") {
            (hyper[id.name] = hyper[id.name] || {})[id.key] = inp.value;
          }
          return;
        }
        if (id.indexOf("range") === 0) { region[id] = inp.value; return; }
        if (inp.value === undefined) return;
        state[STATE_NAMES[id] || id] = inp.value;
      });
    });
    state.region = [region["range0-min"], region["range0-max"],
      region["range1-min"], region["range1-max"]];
    if (chosen) state.optimizers = chosen;
    state.hyper = hyper;
    if (state.data === null) delete state.data;
    const json = JSON.stringify(state);
    const b64 = btoa(unescape(encodeURIComponent(json)))
      .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    try {
      window.history.replaceState(null, "", "?s=" + b64);
    } catch (e) { /* a file:// page or a sandbox: no link then */ }
    return window.dash_clientside.no_update;
  }
  L.share = share;

  // ------------------------------------------ help on a touch screen
  /** The "?" marks hold their help in ``title``, which only a hovering
   *  mouse shows: a tap (or a click) opens it in a box under the mark; a
   *  second tap, or one anywhere else, closes it. */
  function helpClick(ev) {
    const mark = ev.target && ev.target.closest ? ev.target.closest(".help") : null;
    let pop = document.getElementById("help-pop");
    if (!mark || !mark.title || (pop && pop.dataset.text === mark.title)) {
      if (pop) pop.remove();
      return;
    }
    if (!pop) {
      pop = document.createElement("div");
      pop.id = "help-pop";
      pop.className = "help-pop";
      pop.setAttribute("role", "tooltip");
      document.body.appendChild(pop);
    }
    pop.textContent = pop.dataset.text = mark.title;
    const r = mark.getBoundingClientRect();
    const width = Math.min(280, document.documentElement.clientWidth - 16);
    pop.style.width = width + "px";
    pop.style.left = window.scrollX + Math.max(8, Math.min(r.left - 20,
      document.documentElement.clientWidth - width - 8)) + "px";
    pop.style.top = window.scrollY + r.bottom + 6 + "px";
  }
  L.helpClick = helpClick;

  // ----------------------------------------------- Dash clientside hooks
  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    lossmap: {
      share: share,
      spec: function (spec) {
        state.spec = spec;
        if (spec && spec.colors) state.colors = spec.colors;
        return window.dash_clientside.no_update;
      },
      figure: function (fig, stored) {
        // once this figure is drawn (its stamp is on the graph): the paths
        // (a new figure from the server has none)
        const want = fig && fig.layout && fig.layout.meta && fig.layout.meta.stamp;
        let tries = 0;
        const wait = function () {
          const gd = plot("landscape");
          const meta = gd && gd.layout && gd.layout.meta;
          if ((!meta || meta.stamp !== want) && tries++ < 200) {
            setTimeout(wait, 25);
            return;
          }
          setTimeout(function () {
            L.drawRuns(state.latestRuns !== undefined ? state.latestRuns : stored, fig);
            // drawn at the point of its request: the user may have chosen
            // another one meanwhile (a replay that started owns the point)
            if (!state.playing) L.keepPoint();
          }, 30);
        };
        wait();
        return window.dash_clientside.no_update;
      },
      point: function (p) {
        // the store's point (a click confirmed, the defaults, a shared link)
        if (Array.isArray(p) && p.length === 2) state.point = [p[0], p[1]];
        return window.dash_clientside.no_update;
      },
      runs: function (stored) {
        state.latestRuns = stored;
        // the landscape may be between two figures: try again until it is drawn
        let tries = 0;
        const attempt = function () {
          if (state.latestRuns !== stored) return;  // newer runs took over
          if (!L.drawRuns(stored, null) && tries++ < 200) setTimeout(attempt, 25);
        };
        setTimeout(attempt, 0);
        const max = stored && stored.runs && stored.runs.length
          ? Math.max.apply(null, stored.runs.map(function (r) { return r.params.length - 1; }))
          : 1;
        return [max, 0];
      },
      play: function (n) {
        if (!n) return window.dash_clientside.no_update;
        if (state.playing) { L.pause(); } else { L.play(); }
        return window.dash_clientside.no_update;
      },
      step: function (k) {
        if (state.playing || k === null || k === undefined) {
          return window.dash_clientside.no_update;
        }
        if (k !== state.step) {
          L.showStep(k);
          const r0 = state.runs && state.runs.runs[0];
          if (r0) {
            const j = Math.min(k, r0.n - 1);
            clearTimeout(state.confirm);
            state.confirm = setTimeout(function () {
              if (r0.x[j] !== null) L.setPoint(r0.x[j], r0.y[j], true);
            }, 200);
          }
        }
        return window.dash_clientside.no_update;
      },
      click3d: function (cd) {
        // 3-D: the click gives the point on the surface
        if (!cd || !cd.points || !cd.points.length) {
          return window.dash_clientside.no_update;
        }
        const p = cd.points[0];
        const gd = plot("landscape");
        if (is2d(gd)) return window.dash_clientside.no_update;
        const idx = uidIndex(gd, "current");
        if (idx >= 0) {
          window.Plotly.restyle(gd, {x: [[p.x]], y: [[p.y]], z: [[p.z]]}, [idx]);
        }
        state.point = [p.x, p.y];
        showFit(p.x, p.y);
        return [p.x, p.y];
      },
    },
  });
  state.colors = ["#1f77b4"];  // replaced by plot._plotly_style.PATH_COLORS
  window.lossmap = L;
  // whenever elements come or go in the Dash app (its first render, a
  // graph's placeholder swapped for the graph, a tab mounted again), the
  // hosts get their handlers (not in the lesson widget: it has its own)
  const root = document.getElementById("react-entry-point");
  if (root) {
    new MutationObserver(L.attach).observe(root, {childList: true, subtree: true});
    document.addEventListener("click", helpClick);
  }
})();

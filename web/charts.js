// Small SVG charts drawn from the server's answers (no chart library, no build step).
// Every chart is an <svg role="img"> with an aria-label and a <title>, so screen readers get
// a summary; the numbers themselves are always in a table next to it.

const NS = "http://www.w3.org/2000/svg";

function el(name, attrs = {}, text) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function svgRoot(width, height, label) {
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": label });
  svg.append(el("title", {}, label));
  return svg;
}

function extent(values) {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return [0, 1];
  let lo = Math.min(...finite);
  let hi = Math.max(...finite);
  if (lo === hi) {
    lo -= 1;
    hi += 1;
  }
  const pad = (hi - lo) * 0.08;
  return [lo - pad, hi + pad];
}

function fmt(v) {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1e6) return v.toExponential(2);
  if (a >= 100) return v.toFixed(0);
  if (a >= 1) return v.toFixed(2);
  return v.toPrecision(3);
}

function axes(svg, { width, height, pad, yLo, yHi, xLabel, yLabel }) {
  svg.append(el("rect", { x: pad, y: pad / 2, width: width - 1.5 * pad, height: height - 1.5 * pad, fill: "none", stroke: "#555" }));
  const y = (v) => height - pad - ((v - yLo) / (yHi - yLo)) * (height - 1.5 * pad);
  for (let i = 0; i <= 4; i++) {
    const v = yLo + ((yHi - yLo) * i) / 4;
    svg.append(el("text", { x: pad - 4, y: y(v) + 4, "text-anchor": "end", class: "tick" }, fmt(v)));
  }
  if (xLabel) svg.append(el("text", { x: width / 2, y: height - 6, "text-anchor": "middle", class: "axis" }, xLabel));
  if (yLabel) svg.append(el("text", { x: 12, y: height / 2, transform: `rotate(-90 12 ${height / 2})`, "text-anchor": "middle", class: "axis" }, yLabel));
  return y;
}

/**
 * A series with an optional forecast and its interval band.
 * history: numbers; forecast: [{value, lower, upper}].
 */
export function forecastChart({ history, forecast, label, yLabel = "value" }) {
  const width = 640, height = 280, pad = 56;
  const all = [...history, ...forecast.flatMap((f) => [f.value, f.lower, f.upper])];
  const [yLo, yHi] = extent(all);
  const svg = svgRoot(width, height, label);
  const y = axes(svg, { width, height, pad, yLo, yHi, xLabel: "period", yLabel });
  const total = history.length + forecast.length;
  const x = (i) => pad + (i / Math.max(total - 1, 1)) * (width - 1.5 * pad);
  const clamp = (v) => Math.min(Math.max(v, yLo), yHi);
  if (forecast.length > 0) {
    const start = history.length;
    const upper = forecast.map((f, i) => `${x(start + i)},${y(clamp(f.upper))}`);
    const lower = forecast.map((f, i) => `${x(start + i)},${y(clamp(f.lower))}`).reverse();
    svg.append(el("polygon", { points: [...upper, ...lower].join(" "), class: "band" }));
    const pts = [`${x(start - 1)},${y(history[history.length - 1])}`, ...forecast.map((f, i) => `${x(start + i)},${y(f.value)}`)];
    svg.append(el("polyline", { points: pts.join(" "), class: "line forecast" }));
  }
  svg.append(el("polyline", { points: history.map((v, i) => `${x(i)},${y(v)}`).join(" "), class: "line" }));
  return svg;
}

/** Values over time with flagged points, and (if given) the anomaly scores underneath. */
export function anomalyChart({ values, scores, flagged, label }) {
  const width = 640, height = scores ? 360 : 240, pad = 56;
  const top = scores ? 220 : height;
  const svg = svgRoot(width, height, label);
  const [yLo, yHi] = extent(values);
  const y = axes(svg, { width, height: top, pad, yLo, yHi, yLabel: "value" });
  const x = (i) => pad + (i / Math.max(values.length - 1, 1)) * (width - 1.5 * pad);
  svg.append(el("polyline", { points: values.map((v, i) => `${x(i)},${y(v)}`).join(" "), class: "line" }));
  for (const i of flagged) {
    const dot = el("circle", { cx: x(i), cy: y(values[i]), r: 6, class: "flag" });
    dot.append(el("title", {}, `point ${i}: ${values[i]} flagged`));
    svg.append(dot);
  }
  if (scores) {
    const g = el("g", { transform: `translate(0 ${top - 20})` });
    const h = height - top + 20;
    const [sLo, sHi] = [0, Math.max(...scores, 1e-9)];
    const ys = (v) => h - 24 - ((v - sLo) / (sHi - sLo)) * (h - 40);
    const bw = Math.max(1, (width - 1.5 * pad) / scores.length - 1);
    scores.forEach((s, i) => {
      g.append(el("rect", { x: x(i) - bw / 2, y: ys(s), width: bw, height: h - 24 - ys(s), class: flagged.includes(i) ? "bar flagged" : "bar" }));
    });
    g.append(el("text", { x: 12, y: h / 2, class: "axis" }, "score"));
    svg.append(g);
  }
  return svg;
}

/** Horizontal bars, values in [0, max]. items: [{label, value, highlight?}] */
export function barChart({ items, label, max = 1, valueLabel = (v) => fmt(v) }) {
  const rowH = 22, pad = 8, labelW = 230, width = 640;
  const height = items.length * rowH + 2 * pad;
  const svg = svgRoot(width, height, label);
  const w = (v) => (Math.max(0, Math.min(v, max)) / max) * (width - labelW - 70);
  items.forEach((item, i) => {
    const yTop = pad + i * rowH;
    svg.append(el("text", { x: labelW - 6, y: yTop + 15, "text-anchor": "end", class: "tick" }, item.label.length > 36 ? item.label.slice(0, 35) + "…" : item.label));
    svg.append(el("rect", { x: labelW, y: yTop + 3, width: w(item.value), height: rowH - 6, class: item.highlight ? "bar flagged" : "bar" }));
    svg.append(el("text", { x: labelW + w(item.value) + 4, y: yTop + 15, class: "tick" }, valueLabel(item.value)));
  });
  return svg;
}

/** A schedule: one row per technician, one block per task from start to finish (hours). */
export function scheduleChart({ rows, label }) {
  const rowH = 30, pad = 30, labelW = 110, width = 640;
  const height = rows.length * rowH + 2 * pad;
  const end = Math.max(1, ...rows.flatMap((r) => r.tasks.map((t) => t.finish)), ...rows.map((r) => r.capacity || 0));
  const svg = svgRoot(width, height, label);
  const x = (h) => labelW + (h / end) * (width - labelW - 20);
  for (let i = 0; i <= 4; i++) {
    const h = (end * i) / 4;
    svg.append(el("text", { x: x(h), y: height - 8, "text-anchor": "middle", class: "tick" }, `${fmt(h)} h`));
  }
  rows.forEach((row, i) => {
    const yTop = pad / 2 + i * rowH;
    svg.append(el("text", { x: labelW - 6, y: yTop + 19, "text-anchor": "end", class: "tick" }, row.label));
    if (row.capacity) svg.append(el("line", { x1: x(row.capacity), x2: x(row.capacity), y1: yTop, y2: yTop + rowH - 2, class: "capacity" }));
    for (const t of row.tasks) {
      const block = el("rect", { x: x(t.start), y: yTop + 4, width: Math.max(2, x(t.finish) - x(t.start)), height: rowH - 10, class: "task" });
      block.append(el("title", {}, `${t.id}: ${fmt(t.start)}-${fmt(t.finish)} h`));
      svg.append(block);
      svg.append(el("text", { x: x(t.start) + 3, y: yTop + 19, class: "tasklabel" }, t.id));
    }
  });
  return svg;
}

/** Lines over rounds: series [{name, points: [[x, y]], cls}] on one y range (from 0 with
 * `fromZero`, for counts, when no value is negative). */
export function linesChart({ series, label, xLabel, yLabel, fromZero = false, xMax = -Infinity }) {
  const width = 640, height = 260, pad = 56;
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  let [yLo, yHi] = extent(ys);
  if (fromZero && ys.every((v) => v >= 0)) yLo = 0;
  const [xLo, xHi] = [Math.min(...xs), Math.max(...xs, Math.min(...xs) + 1, xMax)];
  const svg = svgRoot(width, height, label);
  const y = axes(svg, { width, height, pad, yLo, yHi, xLabel, yLabel });
  const x = (v) => pad + ((v - xLo) / (xHi - xLo)) * (width - 1.5 * pad);
  series.forEach((s, k) => {
    svg.append(el("polyline", { points: s.points.map(([a, b]) => `${x(a)},${y(b)}`).join(" "), class: `line ${s.cls || ""}` }));
    svg.append(el("text", { x: pad + 8, y: pad / 2 + 16 + 14 * k, class: `legend ${s.cls || ""}` }, s.name));
  });
  return svg;
}

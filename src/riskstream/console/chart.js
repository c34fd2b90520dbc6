// The detector's evidence as an inline SVG: window statistics, not raw samples.
//
// An incident carries the tracked value's mean (and std) over the reference
// window before the change and over the samples from the estimated onset to the
// alarm, plus where those fall in the stream (onset_sample, samples).  That is
// all that is drawn, and the caption says so: the reference band is a level held
// up to the onset, not a trace of the readings.

import { h, num } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const W = 720, H = 280, M = { left: 70, right: 24, top: 28, bottom: 52 };

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function finite(x) {
  return typeof x === "number" && Number.isFinite(x);
}

// Round tick values spanning [lo, hi].
export function ticks(lo, hi, count = 5) {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => span / st <= count) || raw;
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) {
    out.push(Number(t.toPrecision(12)));
  }
  return out;
}

// Where things sit on the sample axis; null when the evidence cannot be placed.
export function geometry(evidence) {
  const before = evidence.before || {};
  const after = evidence.after || {};
  if (!finite(before.mean) || !finite(after.mean)) return null;
  if (before.count === 0) return null;  // a rule with no warm-up: no reference to draw
  let alarm = finite(evidence.samples) ? evidence.samples : null;
  let onset = finite(evidence.onset_sample) ? evidence.onset_sample : null;
  let placed = "from the detector's sample indices";
  if (onset === null && alarm !== null && finite(after.count)) onset = alarm - after.count + 1;
  if (alarm === null && onset !== null && finite(after.count)) alarm = onset + after.count - 1;
  if (onset === null || alarm === null) {
    if (!finite(before.count) || !finite(after.count)) return null;
    onset = before.count + 1;
    alarm = before.count + after.count;
    placed = "estimated from the window sizes (the incident gives no sample indices)";
  }
  const delay = Math.max(1, alarm - onset + 1);
  const x0 = Math.max(0, onset - Math.max(3 * delay, 10));
  const x1 = alarm + Math.max(1, Math.round(0.08 * (alarm - x0)));
  const spread = (w) => (finite(w.std) ? w.std : 0);
  const lows = [before.mean - spread(before), after.mean - spread(after)];
  const highs = [before.mean + spread(before), after.mean + spread(after)];
  let y0 = Math.min(...lows), y1 = Math.max(...highs);
  const pad = (y1 - y0) * 0.15 || Math.abs(y1) * 0.1 || 1;
  y0 -= pad;
  y1 += pad;
  return { before, after, onset, alarm, x0, x1, y0, y1, placed };
}

export function evidenceChart(evidence) {
  const g = geometry(evidence || {});
  if (!g) {
    const none = (evidence || {}).before?.count === 0
      ? "No reference window to draw: the rule that fired learns none (no warm-up)."
      : "This incident's evidence has no window means to draw.";
    return h("p", { class: "muted" }, none);
  }
  const X = (x) => M.left + ((x - g.x0) / (g.x1 - g.x0)) * (W - M.left - M.right);
  const Y = (y) => H - M.bottom - ((y - g.y0) / (g.y1 - g.y0)) * (H - M.top - M.bottom);
  const value = evidence.value || "tracked value";
  const svg = s("svg", {
    viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "data-test": "evidence-chart",
    "aria-label": `${value}: mean ${num(g.before.mean)} before the onset at sample ${g.onset}, `
      + `${num(g.after.mean)} after it; alarm at sample ${g.alarm}`,
  });
  svg.append(s("title", {}, `Evidence: ${value}, window statistics before and after the onset`));

  for (const t of ticks(g.y0, g.y1)) {
    svg.append(s("line", { x1: M.left, x2: W - M.right, y1: Y(t), y2: Y(t), class: "grid" }));
    svg.append(s("text", { x: M.left - 8, y: Y(t) + 4, class: "tick", "text-anchor": "end" }, num(t, 3)));
  }
  for (const t of ticks(g.x0, g.x1).filter((t) => Number.isInteger(t))) {
    svg.append(s("line", { x1: X(t), x2: X(t), y1: H - M.bottom, y2: H - M.bottom + 5, class: "axis" }));
    svg.append(s("text", { x: X(t), y: H - M.bottom + 19, class: "tick", "text-anchor": "middle" }, num(t)));
  }
  svg.append(s("line", { x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom, class: "axis" }));
  svg.append(s("line", { x1: M.left, x2: M.left, y1: M.top, y2: H - M.bottom, class: "axis" }));
  svg.append(s("text", { x: (M.left + W - M.right) / 2, y: H - 10, class: "label", "text-anchor": "middle" },
    "sample index in this stream"));
  svg.append(s("text", {
    x: 16, y: (M.top + H - M.bottom) / 2, class: "label", "text-anchor": "middle",
    transform: `rotate(-90 16 ${(M.top + H - M.bottom) / 2})`,
  }, `${value} (window mean)`));

  const windowShape = (w, from, to, cls) => {
    if (finite(w.std) && w.std > 0) {
      svg.append(s("rect", {
        x: X(from), width: Math.max(1, X(to) - X(from)), y: Y(w.mean + w.std),
        height: Math.max(1, Y(w.mean - w.std) - Y(w.mean + w.std)), class: `band ${cls}`,
        "data-test": `band-${cls}`,
      }));
    }
    svg.append(s("line", { x1: X(from), x2: X(to), y1: Y(w.mean), y2: Y(w.mean), class: `mean ${cls}`,
      "data-test": `mean-${cls}` }));
  };
  windowShape(g.before, g.x0, g.onset, "before");
  windowShape(g.after, g.onset, g.alarm, "after");

  // Labels sit left of their line (the alarm is near the right edge); the alarm's
  // drops a row when the two lines are too close for both labels on one.
  const marker = (x, cls, text, row) => {
    svg.append(s("line", { x1: X(x), x2: X(x), y1: M.top - 6, y2: H - M.bottom, class: `marker ${cls}`,
      "data-test": `marker-${cls}` }));
    svg.append(s("text", { x: X(x) - 6, y: M.top + 4 + 15 * row, class: `marker-label ${cls}`,
      "text-anchor": "end" }, text));
  };
  marker(g.onset, "onset", `estimated onset, sample ${num(g.onset)}`, 0);
  marker(g.alarm, "alarm", `alarm, sample ${num(g.alarm)}`, X(g.alarm) - X(g.onset) < 170 ? 1 : 0);

  const count = (w) => (finite(w.count) ? `${num(w.count)} samples` : "samples");
  const std = (w) => (finite(w.std) ? ` ± ${num(w.std)}` : "");
  const caption = h("figcaption", {},
    "Window statistics reported by the detector, not the raw samples. ",
    `Before: the reference window's mean ${num(g.before.mean)}${std(g.before)} (1 std, ${count(g.before)}), `,
    "drawn as a level up to the estimated onset. ",
    `After: the mean ${num(g.after.mean)}${std(g.after)} of the ${count(g.after)} from the onset to the alarm. `,
    `Positions ${g.placed}.`);
  const legend = h("ul", { class: "legend" },
    h("li", { class: "before" }, "before onset (reference window)"),
    h("li", { class: "after" }, "after onset"),
    h("li", { class: "onset" }, "estimated onset"),
    h("li", { class: "alarm" }, "alarm"));
  return h("figure", { class: "evidence" }, svg, legend, caption);
}

// The timeline of one flow: one swimlane per service, spans as bars, events as diamonds, causal
// arrows between them, and long waits compressed into a labelled band ("waited 3 m 12 s for
// warehouse") instead of a blank stretch of chart. SVG built with DOM calls; text only via
// textContent.

import { colorOf, formatDuration, ghostsOf, nodeEndMs, nodeStartMs } from "./flow-format.js";

const SVG = "http://www.w3.org/2000/svg";
const AXIS_H = 28;
const ROW_H = 24;
const LANE_PAD = 8;
const MIN_BAR = 3;
const MAX_ROWS_WITH_LABELS = 6;
const CHAR_W = 6.3;
const MIN_DRAW_WIDTH = 720;

function el(name, attributes = {}, parent = null) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (parent) parent.appendChild(node);
  return node;
}

function text(parent, x, y, content, className) {
  const node = el("text", { x, y, class: className }, parent);
  node.textContent = content;
  return node;
}

/**
 * Split [start, end] into active segments and compressed gaps. A gap is a stretch where nothing
 * happens that is longer than `minGapMs` and than `minShare` of the whole flow.
 * Returns [{start, end, gap: bool}] in time order, covering [start, end].
 */
export function timeSegments(intervals, start, end, { minGapMs = 1000, minShare = 0.08 } = {}) {
  const total = Math.max(end - start, 0);
  const sorted = intervals.filter(([a]) => Number.isFinite(a)).sort((p, q) => p[0] - q[0]);
  const segments = [];
  let cursor = start;
  let reach = start;
  for (const [a, b] of sorted) {
    const gap = a - reach;
    if (gap > minGapMs && gap > total * minShare) {
      if (reach > cursor || !segments.length) segments.push({ start: cursor, end: reach, gap: false });
      segments.push({ start: reach, end: a, gap: true });
      cursor = a;
    }
    reach = Math.max(reach, b, a);
  }
  segments.push({ start: cursor, end: Math.max(end, cursor), gap: false });
  return segments;
}

/** Lay segments out on [x0, x0 + width]: gaps get a fixed width, active time shares the rest. */
export function scaleSegments(segments, x0, width, { gapWidth = 120, minActive = 24 } = {}) {
  const gaps = segments.filter((s) => s.gap).length;
  const actives = segments.length - gaps;
  const gapW = gaps ? Math.min(gapWidth, (width * 0.5) / gaps) : 0;
  const budget = Math.max(width - gapW * gaps, actives);
  const activeTime = segments.reduce((sum, s) => sum + (s.gap ? 0 : s.end - s.start), 0);
  const floor = Math.min(minActive, budget / Math.max(actives, 1));
  const spare = budget - floor * actives;
  let x = x0;
  return segments.map((segment) => {
    const duration = segment.end - segment.start;
    const w = segment.gap ? gapW : floor + (activeTime > 0 ? (spare * duration) / activeTime : spare / actives);
    const laid = { ...segment, x0: x, x1: x + w };
    x += w;
    return laid;
  });
}

/** Map a time to x within laid-out segments (binary search, linear within a segment). */
export function makeScale(laid) {
  return (t) => {
    let low = 0, high = laid.length - 1;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (laid[mid].end < t) low = mid + 1;
      else high = mid;
    }
    const s = laid[low];
    if (!s) return 0;
    const span = s.end - s.start;
    const share = span > 0 ? Math.min(Math.max((t - s.start) / span, 0), 1) : 0;
    return s.x0 + share * (s.x1 - s.x0);
  };
}

/** Greedy row packing on pixel extents; returns the row of each item and the row count. */
export function packRows(extents) {
  const rowEnds = [];
  const rows = extents.map(([x1, x2]) => {
    let row = rowEnds.findIndex((end) => end <= x1);
    if (row === -1) row = rowEnds.push(-Infinity) - 1;
    rowEnds[row] = x2;
    return row;
  });
  return { rows, count: Math.max(rowEnds.length, 1) };
}

function niceStep(msPerPx, targetPx) {
  const raw = msPerPx * targetPx;
  const power = 10 ** Math.floor(Math.log10(Math.max(raw, 1e-6)));
  for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
  return 10 * power;
}

function offsetLabel(ms) {
  return ms <= 0 ? "0" : `+${formatDuration(ms)}`;
}

function labelWidth(label) {
  return label.length * CHAR_W + 8;
}

// A step whose clock appears behind its cause's is drawn after the cause, and so is everything it
// caused (stamped by the same clock): each node is shifted by the most any of its causes needs.
// Nodes come in causal order, so a cause's shift is known before its effects'.
function clockShifts(snapshot) {
  const causes = new Map();
  for (const edge of snapshot.edges || []) {
    const target = String(edge.target);
    if (!causes.has(target)) causes.set(target, []);
    causes.get(target).push(String(edge.source));
  }
  const start = new Map((snapshot.nodes || []).map((node) => [String(node.id), nodeStartMs(node)]));
  const shifts = new Map();
  for (const node of snapshot.nodes || []) {
    const id = String(node.id);
    let shift = 0;
    for (const cause of causes.get(id) || []) {
      if (!shifts.has(cause)) continue;
      const causeShift = shifts.get(cause);
      shift = Math.max(shift, causeShift, start.get(cause) + causeShift - start.get(id));
    }
    shifts.set(id, shift);
  }
  return shifts;
}

export class FlowTimeline {
  constructor(container, { onSelect }) {
    this.container = container;
    this.onSelect = onSelect;
    this.selected = null;
    this.order = [];
    this.container.addEventListener("click", (event) => {
      const item = event.target.closest("[data-node-id]");
      if (item) this.onSelect(item.dataset.nodeId, "timeline");
    });
    this.container.addEventListener("keydown", (event) => this.onKey(event));
  }

  render(snapshot, colors, services, nowMs = Date.now()) {
    this.snapshot = snapshot;
    this.colors = colors;
    this.services = services;
    this.nowMs = nowMs;
    this.draw();
  }

  draw() {
    const { snapshot, colors, services } = this;
    if (!snapshot) return;
    // Below this width the chart scrolls sideways instead of squeezing its lanes unreadably.
    const width = Math.max(this.container.clientWidth, MIN_DRAW_WIDTH);
    const narrow = width < 840;
    const labelW = narrow ? 92 : 156;
    const nodes = snapshot.nodes || [];
    const ghosts = ghostsOf(snapshot);
    const shifts = clockShifts(snapshot);
    const items = nodes.map((node) => {
      const shift = shifts.get(String(node.id)) || 0;
      const skew = node.skew_ms > 0 ? node.skew_ms : 0;
      return { node, id: String(node.id), skew, t1: nodeStartMs(node) + shift, t2: Math.max(nodeEndMs(node), nodeStartMs(node)) + shift };
    });
    const t0 = items.length ? Math.min(...items.map((i) => i.t1)) : this.nowMs;
    const tEnd = items.length ? Math.max(...items.map((i) => i.t2)) : t0;
    this.order = nodes.map((n) => String(n.id));

    const tailW = ghosts.length ? (narrow ? 170 : 310) : 0;
    const plotX = labelW + 10;
    const plotW = width - plotX - 16 - tailW;
    const segments = timeSegments(items.map((i) => [i.t1, i.t2]), t0, tEnd);
    const laid = scaleSegments(segments, plotX, plotW, { gapWidth: narrow ? 84 : 120 });
    const x = makeScale(laid);

    // Lanes and rows.
    const laneOf = new Map(services.map((s, i) => [s, i]));
    const byLane = services.map(() => []);
    for (const item of items) {
      item.x1 = x(item.t1);
      item.x2 = Math.max(x(item.t2), item.x1 + (item.node.kind === "span" ? MIN_BAR : 0));
      item.label = item.node.name || "(unnamed)";
      byLane[laneOf.get(item.node.service) ?? 0].push(item);
    }
    const lanes = byLane.map((laneItems) => this.packLane(laneItems));
    let y = AXIS_H;
    const laneBoxes = lanes.map((lane, index) => {
      const height = lane.rows * ROW_H + LANE_PAD * 2;
      const box = { y, height, service: services[index] };
      lane.assign(y);
      y += height;
      return box;
    });
    const height = y + 6;

    const svg = el("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "tl-svg", role: "group", "aria-label": "Timeline, one lane per service" });
    const defs = el("defs", {}, svg);
    const pattern = el("pattern", { id: "tl-hatch", width: 8, height: 8, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" }, defs);
    el("rect", { width: 8, height: 8, class: "tl-hatch-bg" }, pattern);
    el("line", { x1: 0, y1: 0, x2: 0, y2: 8, class: "tl-hatch-line" }, pattern);
    const marker = el("marker", { id: "tl-arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto-start-reverse" }, defs);
    el("path", { d: "M0,0 L10,5 L0,10 z", class: "tl-arrowhead" }, marker);

    // Lane backgrounds and labels.
    laneBoxes.forEach((box, index) => {
      const lane = el("g", { class: "tl-lane", "data-service": box.service }, svg);
      el("rect", { x: 0, y: box.y, width, height: box.height, class: index % 2 ? "tl-lane-bg odd" : "tl-lane-bg" }, lane);
      el("rect", { x: 8, y: box.y + box.height / 2 - 5, width: 10, height: 10, rx: 2, fill: colorOf(colors, box.service) }, lane);
      const name = box.service || "(unknown)";
      const maxChars = Math.floor((labelW - 26) / 7);
      const label = text(lane, 24, box.y + box.height / 2 + 4, name.length > maxChars ? `${name.slice(0, maxChars - 1)}…` : name, "tl-lane-label");
      const title = el("title", {}, label);
      title.textContent = name;
    });
    el("line", { x1: plotX - 4, y1: AXIS_H, x2: plotX - 4, y2: height, class: "tl-divider" }, svg);

    // Axis ticks within active segments; compressed gaps as labelled hatched bands.
    const axis = el("g", { class: "tl-axis" }, svg);
    for (const segment of laid) {
      if (segment.gap) {
        this.drawGap(svg, segment, items, AXIS_H, height - AXIS_H - 6, `waited ${formatDuration(segment.end - segment.start)}`);
        continue;
      }
      // Each active stretch is labelled with its offset from the flow's start, then ticks
      // inside it where they fit.
      el("line", { x1: segment.x0, y1: AXIS_H - 6, x2: segment.x0, y2: height - 6, class: "tl-tick" }, axis);
      text(axis, segment.x0 + 3, AXIS_H - 10, offsetLabel(segment.start - t0), "tl-tick-label");
      const pixels = segment.x1 - segment.x0;
      const duration = segment.end - segment.start;
      if (duration <= 0 || pixels < 150) continue;
      const step = niceStep(duration / pixels, narrow ? 80 : 110);
      for (let t = Math.ceil((segment.start - t0) / step) * step + t0; t <= segment.end; t += step) {
        const tx = x(t);
        if (tx - segment.x0 < 70 || segment.x1 - tx < 30) continue;
        el("line", { x1: tx, y1: AXIS_H - 6, x2: tx, y2: height - 6, class: "tl-tick" }, axis);
        text(axis, tx + 3, AXIS_H - 10, offsetLabel(t - t0), "tl-tick-label");
      }
    }

    // The wait after the last observation, and the expected steps that never came.
    if (ghosts.length) {
      const start = plotX + plotW + 8;
      const band = { x0: start, x1: start + (narrow ? 70 : 104), start: tEnd, end: this.nowMs };
      const who = ghosts[0].service ? ` for ${ghosts[0].service}` : "";
      this.drawGap(svg, band, [], AXIS_H, height - AXIS_H - 6, `waiting ${formatDuration(this.nowMs - tEnd)}`, who.trim());
      const ghostLayer = el("g", { class: "tl-ghosts" }, svg);
      for (const ghost of ghosts) {
        const box = laneBoxes[laneOf.get(ghost.service) ?? 0];
        const gx = band.x1 + 14;
        const gy = box.y + LANE_PAD + ROW_H / 2;
        const g = el("g", { class: "tl-ghost", "data-ghost-id": ghost.id }, ghostLayer);
        el("path", { d: `M${gx},${gy - 6} L${gx + 6},${gy} L${gx},${gy + 6} L${gx - 6},${gy} z`, class: "tl-ghost-mark" }, g);
        const room = Math.floor((width - gx - 16) / CHAR_W);
        const label = `expected: ${ghost.name}`;
        text(g, gx + 10, gy + 4, label.length > room ? `${label.slice(0, Math.max(room - 1, 1))}…` : label, "tl-ghost-label");
        const title = el("title", {}, g);
        title.textContent = `${label} from ${ghost.service || "any service"}`;
      }
    }

    // Causal arrows, under the items.
    const arrows = el("g", { class: "tl-arrows" }, svg);
    const placed = new Map(items.map((item) => [item.id, item]));
    for (const edge of snapshot.edges || []) {
      const source = placed.get(String(edge.source)), target = placed.get(String(edge.target));
      if (!source || !target || source === target) continue;
      if (edge.kind === "child_of" && source.node.service === target.node.service) continue;
      const xs = target.t1 < source.t2 ? source.x1 : source.x2;
      const ys = source.y + ROW_H / 2 - 4, yt = target.y + ROW_H / 2 - 4;
      const xt = target.x1;
      const dx = Math.max(14, Math.abs(xt - xs) / 2);
      el("path", {
        d: `M${xs},${ys} C${xs + dx},${ys} ${xt - dx},${yt} ${xt},${yt}`,
        class: `tl-arrow ${edge.kind}`,
        "marker-end": "url(#tl-arrow)",
        "data-source": source.id,
        "data-target": target.id,
      }, arrows);
    }

    // Items.
    const layer = el("g", { class: "tl-items" }, svg);
    for (const item of items) this.drawItem(layer, item, colors);

    // A redraw (new snapshot, new width) must not drop the keyboard user's place.
    const hadFocus = this.container.contains(document.activeElement);
    this.svg = svg;
    this.container.replaceChildren(svg);
    this.container.dataset.laneCount = String(laneBoxes.length);
    this.container.dataset.itemCount = String(items.length);
    this.applySelection(hadFocus);
  }

  packLane(laneItems) {
    laneItems.sort((a, b) => a.x1 - b.x1 || a.t1 - b.t1);
    const extents = (withLabels) => laneItems.map((item) => {
      const inside = item.node.kind === "span" && item.x2 - item.x1 >= labelWidth(item.label);
      const outside = withLabels && !inside ? labelWidth(item.label) + 8 : 0;
      const markerEnd = item.node.kind === "event" ? item.x1 + 7 : item.x2;
      return [item.x1 - (item.node.kind === "event" ? 7 : 0), markerEnd + outside + 3];
    });
    let packed = packRows(extents(true));
    let labelled = true;
    if (packed.count > MAX_ROWS_WITH_LABELS) {
      packed = packRows(extents(false));
      labelled = false;
    }
    laneItems.forEach((item, index) => {
      item.row = packed.rows[index];
      item.showLabel = labelled || (item.node.kind === "span" && item.x2 - item.x1 >= labelWidth(item.label));
    });
    return { items: laneItems, rows: packed.count, assign: (top) => laneItems.forEach((item) => (item.y = top + LANE_PAD + item.row * ROW_H)) };
  }

  drawGap(svg, segment, items, top, height, firstLine, secondLine = null) {
    const g = el("g", { class: "tl-gap" }, svg);
    const w = segment.x1 - segment.x0;
    el("rect", { x: segment.x0 + 2, y: top, width: Math.max(w - 4, 0), height, fill: "url(#tl-hatch)", class: "tl-gap-band" }, g);
    let waitedFor = secondLine;
    if (waitedFor === null) {
      const next = items.filter((item) => item.t1 >= segment.end).sort((a, b) => a.t1 - b.t1)[0];
      waitedFor = next ? `for ${next.node.service}` : "";
    }
    const title = el("title", {}, g);
    title.textContent = `${firstLine} ${waitedFor}`.trim();
    if (w < 44) return;
    const cx = segment.x0 + w / 2;
    const label = el("g", { class: "tl-gap-label" }, g);
    const boxW = Math.min(w - 8, Math.max(labelWidth(firstLine), labelWidth(waitedFor)) + 4);
    el("rect", { x: cx - boxW / 2, y: top + 4, width: boxW, height: waitedFor ? 32 : 18, rx: 4, class: "tl-gap-box" }, label);
    text(label, cx, top + 17, firstLine, "tl-gap-text");
    if (waitedFor) text(label, cx, top + 31, waitedFor, "tl-gap-text");
  }

  drawItem(layer, item, colors) {
    const node = item.node;
    const color = colorOf(colors, node.service);
    const g = el("g", {
      class: `tl-item ${node.kind}${node.status === "error" ? " error" : ""}${item.skew ? " skewed" : ""}${(node.shared_with || []).length ? " shared" : ""}`,
      "data-node-id": item.id,
      role: "button",
      tabindex: -1,
      "aria-label": `${node.kind} ${node.name} in ${node.service}${node.kind === "span" ? `, ${formatDuration(item.t2 - item.t1)}` : ""}`,
    }, layer);
    const title = el("title", {}, g);
    title.textContent = `${node.name} · ${node.service}${node.kind === "span" ? ` · ${formatDuration(item.t2 - item.t1)}` : ""}`
      + (item.skew ? ` · clock appears ${formatDuration(item.skew)} behind its cause's; drawn after it` : "")
      + ((node.shared_with || []).length ? ` · shared with ${node.shared_with.map((f) => f.key).join(", ")}` : "");
    const cy = item.y + ROW_H / 2 - 4;
    if (item.skew) el("circle", { cx: item.x1 - 9, cy, r: 3.5, class: "tl-skew-mark" }, g);
    if (node.kind === "span") {
      el("rect", { x: item.x1, y: cy - 7, width: Math.max(item.x2 - item.x1, MIN_BAR), height: 14, rx: 3, fill: color, class: "tl-bar" }, g);
      if (item.showLabel) {
        const inside = item.x2 - item.x1 >= labelWidth(item.label);
        text(g, inside ? item.x1 + 5 : item.x2 + 5, cy + 4, item.label, inside ? "tl-label inside" : "tl-label");
      }
    } else {
      el("path", { d: `M${item.x1},${cy - 7} L${item.x1 + 7},${cy} L${item.x1},${cy + 7} L${item.x1 - 7},${cy} z`, fill: color, class: "tl-event" }, g);
      if (item.showLabel) text(g, item.x1 + 10, cy + 4, item.label, "tl-label event-label");
    }
  }

  select(id) {
    this.selected = id === null ? null : String(id);
    this.applySelection(false);
  }

  applySelection(focus) {
    if (!this.svg) return;
    for (const node of this.svg.querySelectorAll(".tl-item.selected")) node.classList.remove("selected");
    for (const node of this.svg.querySelectorAll(".tl-arrow.near")) node.classList.remove("near");
    for (const node of this.svg.querySelectorAll('.tl-item[tabindex="0"]')) node.setAttribute("tabindex", "-1");
    const current = this.selected && this.svg.querySelector(`.tl-item[data-node-id="${CSS.escape(this.selected)}"]`);
    const stop = current || this.svg.querySelector(".tl-item");
    if (stop) stop.setAttribute("tabindex", "0");
    if (!current) return;
    current.classList.add("selected");
    current.parentNode.appendChild(current);  // draw the selected item on top
    for (const arrow of this.svg.querySelectorAll(".tl-arrow")) {
      if (arrow.dataset.source === this.selected || arrow.dataset.target === this.selected) arrow.classList.add("near");
    }
    if (focus) current.focus();
  }

  onKey(event) {
    const item = event.target.closest && event.target.closest("[data-node-id]");
    if (!item) return;
    const index = this.order.indexOf(item.dataset.nodeId);
    let next = null;
    if (event.key === "Enter" || event.key === " ") next = index;
    else if (event.key === "ArrowRight" || event.key === "ArrowDown") next = Math.min(index + 1, this.order.length - 1);
    else if (event.key === "ArrowLeft" || event.key === "ArrowUp") next = Math.max(index - 1, 0);
    else if (event.key === "Home") next = 0;
    else if (event.key === "End") next = this.order.length - 1;
    if (next === null) return;
    event.preventDefault();
    this.onSelect(this.order[next], "timeline");
    this.applySelection(true);
  }
}

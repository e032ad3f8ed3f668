// The flow page: header, causal graph, timeline and inspector, all drawn from one snapshot (the
// contract shape of GET /api/flows/<id>). `applySnapshot` re-renders everything from a newer
// snapshot, keeping the selection (node ids are stable), so a live updater only has to call it
// (or dispatch a "choreoscope:flow-snapshot" event whose detail is the snapshot).

import { renderCriticalPath } from "./flow-critical.js";
import { FlowGraph } from "./flow-graph.js";
import { FlowTimeline } from "./flow-timeline.js";
import {
  colorOf, flowPosition, formatClock, formatDateTime, formatDuration, ghostsOf, isoToMs, nodeEndMs, nodeStartMs,
  serviceColors, servicesOf,
} from "./flow-format.js";

const state = { snapshot: null, selected: null, announced: null, colors: new Map(), services: [], nodes: new Map(), ghosts: new Map() };
let graph = null;
let timeline = null;
let config = {};

function $(selector, root = document) {
  return root.querySelector(selector);
}

function h(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function announce(message) {
  const region = $("#flow-announcer");
  if (region) region.textContent = message;
}

async function copyText(text, what) {
  try {
    await navigator.clipboard.writeText(text);
    announce(`${what} copied to the clipboard`);
    return true;
  } catch {
    // Without clipboard access (an insecure origin), select the text for the user to copy.
    const area = h("textarea", { class: "copy-fallback", "aria-label": what, readonly: true });
    area.value = text;
    document.body.append(area);
    area.select();
    const copied = document.execCommand && document.execCommand("copy");
    area.remove();
    announce(copied ? `${what} copied to the clipboard` : `Could not copy ${what.toLowerCase()}`);
    return copied;
  }
}

function valueText(value) {
  if (typeof value === "string") return value;
  return JSON.stringify(value, null, 2);
}

function keyValueTable(caption, entries) {
  if (!entries.length) return null;
  const body = h("tbody");
  for (const [key, value] of entries) body.append(h("tr", {}, h("th", { scope: "row" }, key), h("td", {}, h("code", {}, valueText(value)))));
  return h("table", { class: "kv" }, h("caption", {}, caption), body);
}

function section(title, ...content) {
  const body = content.filter(Boolean);
  if (!body.length) return null;
  return h("section", { class: "insp-section" }, h("h3", {}, title), ...body);
}

// --- Header ----------------------------------------------------------------------------------

function renderHeader(snapshot, nowMs) {
  const status = $("#flow-status");
  if (status) {
    status.textContent = snapshot.status;
    status.className = `badge badge-${snapshot.status}`;
  }
  const set = (id, value) => {
    const node = document.getElementById(id);
    if (node) node.textContent = value;
  };
  set("flow-key", snapshot.key);
  set("flow-type", snapshot.type || "—");
  const started = isoToMs(snapshot.started_at);
  const lastSeen = isoToMs(snapshot.last_seen_at);
  set("flow-start", formatDateTime(started));
  const open = snapshot.status === "running" || snapshot.status === "stuck";
  set("flow-duration", `${formatDuration(lastSeen - started)}${open ? " so far" : ""}`);
  set("flow-count", `${(snapshot.nodes || []).length} observations`);
  set("flow-position", flowPosition(snapshot, nowMs));
  const position = $("#flow-where");
  if (position) position.className = `where where-${snapshot.status}`;
  const services = $("#flow-services");
  if (services) {
    services.replaceChildren(...state.services.map((service) => {
      const swatch = h("span", { class: "swatch", "aria-hidden": "true" });
      swatch.style.backgroundColor = colorOf(state.colors, service);
      const missingOnly = !(snapshot.nodes || []).some((n) => n.service === service);
      return h("li", { class: missingOnly ? "service-chip expected" : "service-chip", title: missingOnly ? "expected, not seen yet" : null }, swatch, service || "(unknown)");
    }));
  }
}

// --- Other flows and clocks ------------------------------------------------------------------

function flowLink(flow) {
  return h("a", { href: `${config.flows_url || "/flows/"}${encodeURIComponent(flow.id)}/`, class: "flow-link" }, flow.key || `flow ${flow.id}`);
}

function joined(items) {
  const parts = [];
  items.forEach((item, index) => {
    if (index) parts.push(index === items.length - 1 ? " and " : ", ");
    parts.push(item);
  });
  return parts;
}

function otherFlows(flows) {
  const byId = new Map();
  for (const flow of flows) byId.set(String(flow.id), flow);
  return [...byId.values()];
}

function nodeName(id) {
  const node = state.nodes.get(String(id));
  return node ? `${node.name} (${node.service || "?"})` : `#${id}`;
}

// Shared steps, edges into other flows and clocks that disagree: one sentence each, with links.
function renderRelations(snapshot) {
  const box = $("#flow-relations");
  if (!box) return;
  const items = [];
  for (const skew of snapshot.clock_skew || []) {
    items.push(h("li", { class: "rel-skew" }, h("span", { class: "rel-mark rel-mark-skew" }, "Clock"),
      h("strong", {}, skew.service), `'s clock appears ${formatDuration(skew.skew_ms)} behind `, h("strong", {}, skew.behind),
      "'s: its steps are stamped before their causes. The timeline draws them after their causes."));
  }
  const incoming = otherFlows((snapshot.cross_flow_edges || []).filter((e) => e.direction === "in").map((e) => e.other_flow));
  const outgoing = otherFlows((snapshot.cross_flow_edges || []).filter((e) => e.direction === "out").map((e) => e.other_flow));
  if (incoming.length) {
    items.push(h("li", { class: "rel-cross" }, h("span", { class: "rel-mark rel-mark-cross" }, "From"),
      `Caused by ${incoming.length === 1 ? "the flow" : "the flows"} `, ...joined(incoming.map(flowLink)), " (a different business key)."));
  }
  if (outgoing.length) {
    items.push(h("li", { class: "rel-cross" }, h("span", { class: "rel-mark rel-mark-cross" }, "To"),
      `Led to ${outgoing.length === 1 ? "the flow" : "the flows"} `, ...joined(outgoing.map(flowLink)), " (a different business key)."));
  }
  const sharedNodes = (snapshot.nodes || []).filter((n) => (n.shared_with || []).length);
  if (sharedNodes.length) {
    const others = otherFlows(sharedNodes.flatMap((n) => n.shared_with));
    const shown = others.slice(0, 8);
    items.push(h("li", { class: "rel-shared" }, h("span", { class: "rel-mark rel-mark-shared" }, "Shared"),
      `${sharedNodes.length} ${sharedNodes.length === 1 ? "step is" : "steps are"} shared with `, ...joined(shown.map(flowLink)),
      others.length > shown.length ? ` and ${others.length - shown.length} more flows` : "",
      ": one observation (a batch, say) that served each of these flows."));
  }
  box.hidden = !items.length;
  box.replaceChildren(...(items.length ? [h("ul", { class: "relations-list" }, ...items)] : []));
}

// --- Inspector -------------------------------------------------------------------------------

function nodeButton(id, label) {
  const button = h("button", { type: "button", class: "link-button jump", "data-select": id }, label);
  return button;
}

function neighbours(id) {
  const causes = [], effects = [];
  for (const edge of state.snapshot.edges || []) {
    if (String(edge.target) === id && state.nodes.has(String(edge.source))) causes.push([String(edge.source), edge.kind]);
    if (String(edge.source) === id && state.nodes.has(String(edge.target))) effects.push([String(edge.target), edge.kind]);
  }
  return { causes, effects };
}

function relationList(pairs) {
  if (!pairs.length) return null;
  return h("ul", { class: "relations" }, ...pairs.map(([other, kind]) => {
    const node = state.nodes.get(other);
    const swatch = h("span", { class: "swatch", "aria-hidden": "true" });
    swatch.style.backgroundColor = colorOf(state.colors, node.service);
    return h("li", {}, swatch, nodeButton(other, node.name), h("span", { class: "muted" }, ` ${node.service} · ${kind.replace("_", " ")}`));
  }));
}

function traceRow(node) {
  if (!node.trace_id) return null;
  const copy = h("button", { type: "button", class: "mini", "data-copy": node.trace_id, "aria-label": "Copy trace id" }, "Copy");
  const parts = [h("code", { class: "trace-id" }, node.trace_id), " ", copy];
  if (config.trace_url) {
    const href = config.trace_url.replace("{trace_id}", encodeURIComponent(node.trace_id));
    parts.push(" ", h("a", { href, target: "_blank", rel: "noopener noreferrer" }, "Open trace ↗"));
  }
  return [h("dt", {}, "Trace"), h("dd", { class: "trace-row" }, ...parts)];
}

function linkList(links) {
  if (!links || !links.length) return null;
  return h("ul", { class: "links" }, ...links.map((link) => {
    const traceId = link.trace_id || link.traceId || "";
    const spanId = link.span_id || link.spanId || "";
    const inFlow = (state.snapshot.nodes || []).find((n) => n.kind === "span" && n.trace_id === traceId && n.span_id === spanId);
    let target;
    if (inFlow) target = nodeButton(String(inFlow.id), `${inFlow.name} (this flow)`);
    else if (link.flow_id) target = h("a", { href: `${config.flows_url || "/flows/"}${encodeURIComponent(link.flow_id)}/` }, `flow ${link.flow_key || link.flow_id}`);
    else target = h("span", { class: "muted" }, "not seen by Choreoscope");
    const attrs = Object.entries(link.attributes || {});
    return h("li", {}, target, h("div", { class: "muted small" }, h("code", {}, `${traceId}/${spanId}`)),
      attrs.length ? keyValueTable("Link attributes", attrs) : null);
  }));
}

function spanEvents(events, node) {
  if (!events || !events.length) return null;
  const start = nodeStartMs(node);
  return h("ul", { class: "span-events" }, ...events.map((event) => {
    const at = typeof event.time_ns === "number" ? event.time_ns / 1e6 : isoToMs(event.time || event.timestamp);
    const offset = Number.isFinite(at) ? `+${formatDuration(at - start)}` : "";
    const attrs = Object.entries(event.attributes || {});
    return h("li", {}, h("strong", {}, event.name || "(event)"), " ", h("span", { class: "muted" }, offset), attrs.length ? keyValueTable("Event attributes", attrs) : null);
  }));
}

// Plain log records the span emitted (not steps of the flow): offset from the span's start,
// severity, body; attributes folded away.
function spanLogs(logs, node) {
  if (!logs || !logs.length) return null;
  const start = nodeStartMs(node);
  return h("ol", { class: "span-logs" }, ...logs.map((log) => {
    const at = typeof log.time_ns === "number" ? log.time_ns / 1e6 : isoToMs(log.time);
    const offset = Number.isFinite(at) ? `${at >= start ? "+" : "−"}${formatDuration(Math.abs(at - start))}` : "";
    const severity = (log.severity || "").toUpperCase();
    const level = /^(ERROR|FATAL|CRITICAL)/.test(severity) ? "error" : /^WARN/.test(severity) ? "warn" : "info";
    const attrs = Object.entries(log.attributes || {});
    return h("li", { class: `span-log level-${level}` },
      h("div", { class: "span-log-head" }, severity ? h("span", { class: "severity" }, severity) : null, h("span", { class: "muted" }, offset)),
      log.body ? h("p", { class: "span-log-body" }, log.body) : null,
      attrs.length ? h("details", {}, h("summary", {}, `${attrs.length} attribute${attrs.length === 1 ? "" : "s"}`), keyValueTable("Log attributes", attrs)) : null);
  }));
}

function inspectNode(node) {
  const start = nodeStartMs(node), end = nodeEndMs(node);
  const flowStart = isoToMs(state.snapshot.started_at);
  const swatch = h("span", { class: "swatch", "aria-hidden": "true" });
  swatch.style.backgroundColor = colorOf(state.colors, node.service);
  const facts = [
    [h("dt", {}, "Service"), h("dd", {}, swatch, node.service || "(unknown)")],
    [h("dt", {}, "Kind"), h("dd", {}, node.kind === "span" ? `span (${node.span_kind || "unspecified"})` : "event")],
    [h("dt", {}, "Started"), h("dd", {}, `${formatClock(start)} `, h("span", { class: "muted" }, `(+${formatDuration(start - flowStart)})`))],
    node.kind === "span" ? [h("dt", {}, "Duration"), h("dd", {}, formatDuration(end - start))] : null,
    node.status && node.status !== "unset" ? [h("dt", {}, "Status"), h("dd", { class: node.status === "error" ? "status-error" : "" }, node.status, node.status_message ? ` — ${node.status_message}` : "")] : null,
    traceRow(node),
    node.span_id ? [h("dt", {}, node.kind === "span" ? "Span" : "Emitted in span"), h("dd", {}, h("code", {}, node.span_id))] : null,
    node.event_id ? [h("dt", {}, "Event id"), h("dd", {}, h("code", {}, node.event_id))] : null,
    node.event_source ? [h("dt", {}, "Source"), h("dd", {}, h("code", {}, node.event_source))] : null,
    node.subject ? [h("dt", {}, "Subject"), h("dd", {}, node.subject)] : null,
    node.business_key ? [h("dt", {}, "Business key"), h("dd", {}, node.business_key)] : null,
  ].filter(Boolean).flat();
  if (node.skew_ms > 0) {
    facts.push(h("dt", {}, "Clock"), h("dd", { class: "skew-note" }, `appears ${formatDuration(node.skew_ms)} behind its cause's (stamped before it; drawn after it)`));
  }
  const { causes, effects } = neighbours(String(node.id));
  const hasData = node.data !== undefined && node.data !== null;
  const crossing = (snapshot) => (snapshot.cross_flow_edges || []).filter((e) => String(e.direction === "in" ? e.target : e.source) === String(node.id));
  const crossList = (direction) => {
    const found = crossing(state.snapshot).filter((e) => e.direction === direction);
    if (!found.length) return null;
    return h("ul", { class: "relations" }, ...found.map((e) => h("li", {}, flowLink(e.other_flow),
      h("span", { class: "muted" }, ` · ${e.kind.replace("_", " ")}`))));
  };
  const shared = node.shared_with || [];
  return [
    h("header", { class: "insp-head" }, h("p", { class: "insp-kind" }, node.kind === "span" ? "Span" : "Event"), h("h2", { id: "inspector-title" }, node.name || "(unnamed)")),
    h("dl", { class: "facts" }, ...facts),
    shared.length ? section("Shared step", h("p", { class: "muted small" }, "Stored once, this step also serves:"),
      h("ul", { class: "relations" }, ...shared.map((flow) => h("li", {}, flowLink(flow))))) : null,
    section("Caused by", relationList(causes)),
    section("Caused by another flow", crossList("in")),
    section("Led to", relationList(effects)),
    section("Led to another flow", crossList("out")),
    node.kind === "event" && hasData ? section("Data", h("pre", { class: "data" }, valueText(node.data))) : null,
    section(node.logs && node.logs.length ? `Log records (${node.logs.length})` : "Log records", spanLogs(node.logs, node)),
    section("Attributes", keyValueTable("Attributes", Object.entries(node.attributes || {}))),
    section("Span events", spanEvents(node.events, node)),
    section("Links", linkList(node.links)),
    node.resource && Object.keys(node.resource).length
      ? h("details", { class: "insp-section" }, h("summary", {}, "Resource"), keyValueTable("Resource", Object.entries(node.resource)))
      : null,
  ];
}

function inspectGhost(ghost, nowMs) {
  const due = Number.isFinite(ghost.dueMs) ? `${formatDateTime(ghost.dueMs)} (${nowMs > ghost.dueMs ? `overdue by ${formatDuration(nowMs - ghost.dueMs)}` : `in ${formatDuration(ghost.dueMs - nowMs)}`})` : "—";
  return [
    h("header", { class: "insp-head" }, h("p", { class: "insp-kind" }, "Expected, not seen"), h("h2", { id: "inspector-title" }, ghost.name)),
    h("dl", { class: "facts" },
      h("dt", {}, "Service"), h("dd", {}, ghost.service || "(any)"),
      h("dt", {}, "After"), h("dd", {}, ghost.after ? `${ghost.after}${ghost.afterService ? ` in ${ghost.afterService}` : ""}` : "the flow's start"),
      h("dt", {}, "Due"), h("dd", {}, due),
      h("dt", {}, "Expectation"), h("dd", {}, ghost.origin || "—")),
  ];
}

function renderInspector() {
  const inspector = $("#flow-inspector");
  const body = $("#inspector-body");
  if (!inspector || !body) return;
  const id = state.selected;
  const node = id && state.nodes.get(id);
  const ghost = id && state.ghosts.get(id);
  const layout = inspector.closest(".flow-body");
  if (!node && !ghost) {
    inspector.classList.remove("open");
    layout?.classList.remove("inspecting");
    state.announced = null;
    body.replaceChildren(h("p", { class: "muted insp-empty" }, "Select a step in the graph or the timeline to see its attributes, data and links."));
    return;
  }
  body.replaceChildren(...(node ? inspectNode(node) : inspectGhost(ghost, Date.now())).filter(Boolean));
  // Announce the selection briefly; reading the whole inspector aloud on every move would drown the user.
  if (state.announced !== id) announce(node ? `${node.name}, ${node.kind} in ${node.service}` : `Expected ${ghost.name}, not seen yet`);
  state.announced = id;
  inspector.classList.add("open");
  layout?.classList.add("inspecting");
}

// --- Selection -------------------------------------------------------------------------------

export function selectNode(id, origin = "page") {
  state.selected = id === null || id === undefined ? null : String(id);
  if (graph && origin !== "graph") graph.select(state.selected);
  if (timeline) timeline.select(state.selected);
  renderInspector();
  // The selection lives in the URL fragment, so a link to the page can point at one step.
  const url = location.pathname + location.search + (state.selected ? `#node=${encodeURIComponent(state.selected)}` : "");
  history.replaceState(null, "", url);
}

function selectionFromHash() {
  const match = /^#node=(.+)$/.exec(location.hash);
  return match ? decodeURIComponent(match[1]) : null;
}

// --- Snapshots -------------------------------------------------------------------------------

/** Draw (or redraw) the whole page from a snapshot of the flow. */
export function applySnapshot(snapshot) {
  state.snapshot = snapshot;
  state.services = servicesOf(snapshot);
  // Keep colours stable across updates: a service keeps its colour, newcomers take the next.
  const colors = serviceColors([...state.colors.keys(), ...state.services]);
  state.colors = colors;
  state.nodes = new Map((snapshot.nodes || []).map((node) => [String(node.id), node]));
  state.ghosts = new Map(ghostsOf(snapshot).map((ghost) => [ghost.id, ghost]));
  const nowMs = Date.now();
  renderHeader(snapshot, nowMs);
  renderRelations(snapshot);
  renderLegend();
  renderCriticalPath($("#flow-critical"), snapshot, colors);
  // Marks let the benchmark (and anyone with devtools) see where drawing time goes.
  performance.mark("flow-graph-start");
  if (graph) graph.render(snapshot, colors);
  performance.mark("flow-graph-drawn");
  if (timeline) timeline.render(snapshot, colors, state.services, nowMs);
  performance.mark("flow-timeline-drawn");
  if (state.selected && !state.nodes.has(state.selected) && !state.ghosts.has(state.selected)) state.selected = null;
  selectNode(state.selected, "snapshot");
}

function renderLegend() {
  const legend = $("#graph-legend");
  if (!legend) return;
  legend.replaceChildren(...state.services.map((service) => {
    const swatch = h("span", { class: "swatch", "aria-hidden": "true" });
    swatch.style.backgroundColor = colorOf(state.colors, service);
    return h("li", {}, swatch, service || "(unknown)");
  }));
}

// --- Wiring ----------------------------------------------------------------------------------

function onGraphKey(event) {
  if (!graph) return;
  const keys = {
    ArrowRight: () => selectNode(graph.neighbour("forward")),
    ArrowDown: () => selectNode(graph.neighbour("forward")),
    ArrowLeft: () => selectNode(graph.neighbour("back")),
    ArrowUp: () => selectNode(graph.neighbour("back")),
    "+": () => graph.zoomBy(1.25),
    "=": () => graph.zoomBy(1.25),
    "-": () => graph.zoomBy(0.8),
    0: () => graph.fit(),
    Escape: () => selectNode(null),
  };
  const action = keys[event.key];
  if (!action) return;
  event.preventDefault();
  action();
}

function wire() {
  document.addEventListener("click", (event) => {
    const jump = event.target.closest("[data-select]");
    if (jump) selectNode(jump.dataset.select);
    const copy = event.target.closest("[data-copy]");
    if (copy) copyText(copy.dataset.copy, "Trace id");
  });
  const copyJson = $("#copy-json");
  if (copyJson) copyJson.addEventListener("click", () => copyText(JSON.stringify(state.snapshot, null, 2), "Flow JSON"));
  $("#graph-fit")?.addEventListener("click", () => graph?.fit());
  $("#graph-zoom-in")?.addEventListener("click", () => graph?.zoomBy(1.25));
  $("#graph-zoom-out")?.addEventListener("click", () => graph?.zoomBy(0.8));
  $("#flow-graph")?.addEventListener("keydown", onGraphKey);
  $("#inspector-close")?.addEventListener("click", () => selectNode(null));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && state.selected && !event.target.closest("#flow-graph")) selectNode(null);
  });
  document.addEventListener("choreoscope:flow-snapshot", (event) => applySnapshot(event.detail));
  let pending = 0;
  const observer = new ResizeObserver(() => {
    cancelAnimationFrame(pending);
    pending = requestAnimationFrame(() => {
      graph?.resize();
      if (state.selected) graph?.select(state.selected);  // keep the selected step in view
      timeline?.draw();
    });
  });
  const timelineBox = $("#flow-timeline");
  if (timelineBox) observer.observe(timelineBox);
}

function start() {
  const data = document.getElementById("flow-data");
  if (!data) return;
  config = JSON.parse(document.getElementById("flow-config")?.textContent || "{}");
  const onSelect = (id, origin) => selectNode(id, origin);
  const graphBox = document.getElementById("flow-graph");
  const timelineBox = document.getElementById("flow-timeline");
  if (graphBox) graph = new FlowGraph(graphBox, { onSelect });
  if (timelineBox) timeline = new FlowTimeline(timelineBox, { onSelect });
  wire();
  state.selected = selectionFromHash();
  applySnapshot(JSON.parse(data.textContent));
  document.body.dataset.flowReady = "true";
}

start();

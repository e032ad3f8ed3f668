// The service map: producer → event type → consumer, from /ws/topology/ (snapshots for the chosen
// window, pulses as events happen). Event edges (style "event") are dashed, through their event
// type, labelled with rate, send → process time (p50 / p95) and error share; calls (caller →
// callee, style "call") are solid and straight between services, labelled with their p95
// duration. A consumer whose queue holds messages for it says how many, in amber.
// Used full size on /services/ and compact on the overview; every [data-service-map] is one map.

import cytoscape from "../vendor/cytoscape/cytoscape.esm.min.js";
import cytoscapeDagre from "../vendor/cytoscape-dagre/cytoscape-dagre.min.js";
import { LiveSocket, showStatus } from "./live-socket.js";

cytoscape.use(cytoscapeDagre);

const REFRESH_MS = 15000; // labels (rates, p95) are re-read this often
const MAX_DOTS = 60; // pulses drawn at once; more are dropped, the edge still flashes
const DOT_MS = 700;

function cssVar(name, fallback) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

export function formatRate(rate) {
  if (!rate) return "0/s";
  if (rate >= 10) return `${rate.toFixed(0)}/s`;
  if (rate >= 0.1) return `${rate.toFixed(1)}/s`;
  return `${(rate * 60).toFixed(1)}/min`;
}

export function formatMs(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms >= 10000) return `${(ms / 1000).toFixed(0)} s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms)} ms`;
}

export function edgeLabel(edge) {
  const parts = [formatRate(edge.rate)];
  if (edge.p50_ms !== null && edge.p50_ms !== undefined) parts.push(`p50 ${formatMs(edge.p50_ms)}`);
  if (edge.p95_ms !== null && edge.p95_ms !== undefined) parts.push(`p95 ${formatMs(edge.p95_ms)}`);
  if (edge.error_share > 0) parts.push(`${(edge.error_share * 100).toFixed(edge.error_share < 0.1 ? 1 : 0)}% err`);
  return parts.join(" · ");
}

export function formatCount(count) {
  if (count >= 10000) return `${Math.round(count / 1000)}k`;
  if (count >= 1000) return `${(count / 1000).toFixed(1)}k`;
  return String(count);
}

/** Messages each service node's queues hold for it (waiting plus unacknowledged, where known). */
export function lagByNode(lag) {
  const behind = new Map();
  for (const row of lag || []) {
    if (row.node) behind.set(row.node, (behind.get(row.node) || 0) + row.waiting + (row.unacknowledged || 0));
  }
  return behind;
}

function edgeId(source, target) {
  return `${source}->${target}`;
}

function style() {
  const text = cssVar("--text", "#1b2030"), muted = cssVar("--muted", "#5d667a"), accent = cssVar("--accent", "#4f46e5");
  const surface = cssVar("--surface", "#fff"), failed = cssVar("--failed", "#b91c1c"), soft = cssVar("--accent-soft", "#e0e7ff");
  const call = cssVar("--call", "#4f46e5"), event = cssVar("--event", "#0d9488");
  // White on the light theme's indigo; on the dark theme's paler indigo, the page's near-black reads better.
  const onAccent = window.matchMedia("(prefers-color-scheme: dark)").matches ? cssVar("--bg", "#0f1320") : "#fff";
  return [
    { selector: "node", style: { label: "data(name)", "font-size": 12, color: text, "text-valign": "center", "text-halign": "center",
      "min-zoomed-font-size": 6 } },
    { selector: "node.service", style: { shape: "round-rectangle", width: "data(width)", height: 34, "background-color": accent,
      color: onAccent, "font-weight": 600 } },
    { selector: "node.event_type", style: { shape: "round-rectangle", width: "data(width)", height: 26, "background-color": surface,
      "border-width": 1.5, "border-color": muted, "font-size": 11, color: text } },
    { selector: "node.lagging", style: { "text-wrap": "wrap", height: 44, "border-width": 3, "border-color": cssVar("--stuck", "#b45309"),
      "line-height": 1.25 } },
    { selector: "node.flash", style: { "underlay-color": accent, "underlay-opacity": 0.3, "underlay-padding": 6 } },
    { selector: "node.dot", style: { width: 9, height: 9, shape: "ellipse", "background-color": accent, label: "", "border-width": 2,
      "border-color": soft, events: "no" } },
    { selector: "edge", style: { width: "data(weight)", "curve-style": "bezier", "line-color": muted, "target-arrow-color": muted,
      "target-arrow-shape": "triangle", "arrow-scale": 0.8, opacity: 0.7, label: "data(label)", "font-size": 10, color: muted,
      "text-background-color": surface, "text-background-opacity": 0.9, "text-background-padding": 2, "text-rotation": "autorotate",
      "min-zoomed-font-size": 7 } },
    { selector: "edge.event", style: { "line-style": "dashed", "line-dash-pattern": [7, 4], "line-color": event, "target-arrow-color": event } },
    { selector: "edge.call", style: { "line-color": call, "target-arrow-color": call, color: call, opacity: 0.9, "target-arrow-shape": "triangle-backcurve" } },
    { selector: "edge.errors", style: { "line-color": failed, "target-arrow-color": failed, color: failed } },
    { selector: "edge.pulse", style: { "line-color": accent, "target-arrow-color": accent, opacity: 1 } },
    // A pulse brightens an edge but keeps its colour: calls and events stay told apart.
    { selector: "edge.event.pulse", style: { "line-color": event, "target-arrow-color": event } },
  ];
}

function elementsOf(topology) {
  const behind = lagByNode(topology.lag);
  const nodes = topology.nodes.map((node) => {
    const queued = behind.get(node.id) || 0;
    const label = queued ? `${node.name}\n${formatCount(queued)} queued` : node.name;
    return {
      group: "nodes",
      data: { id: node.id, name: label, kind: node.kind, width: Math.max(70, Math.min(220, node.name.length * 7.2 + 24)) },
      classes: queued ? `${node.kind} lagging` : node.kind,
    };
  });
  const edges = topology.edges.map((edge) => ({
    group: "edges",
    data: { id: edgeId(edge.source, edge.target), source: edge.source, target: edge.target, label: edgeLabel(edge),
      weight: Math.min(6, 1.2 + Math.log10(1 + edge.count)) },
    classes: [edge.style === "call" ? "call" : "event", edge.error_share >= 0.05 ? "errors" : ""].filter(Boolean).join(" "),
  }));
  return [...nodes, ...edges];
}

class ServiceMap {
  constructor(root) {
    this.root = root;
    this.box = root.querySelector(".service-map");
    this.empty = root.querySelector(".map-empty");
    // The full page lists the reactions in a table beside the map; the compact map has none.
    this.table = root.dataset.compact === undefined ? document.querySelector("[data-map-table]") : null;
    this.statusOut = root.querySelector(".live-status");
    this.window = root.dataset.window || "15m";
    this.signature = "";
    this.dots = 0;
    this.refetchTimer = null;
    this.cy = cytoscape({ container: this.box, style: style(), minZoom: 0.2, maxZoom: 2.5, wheelSensitivity: 0.3,
      boxSelectionEnabled: false, autoungrabify: false });
    this.cy.on("tap", "node.service, node.event_type", (event) => {
      const node = event.target;
      const param = node.data("kind") === "service" ? "service" : "type";
      location.assign(`/live/?${param}=${encodeURIComponent(node.data("name"))}`);
    });
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => this.cy.style(style()));
    new ResizeObserver(() => this.cy.resize()).observe(this.box);
    for (const button of root.querySelectorAll("[data-window]")) {
      button.addEventListener("click", () => this.choose(button.dataset.window));
    }
    this.showWindow();
    const initial = root.querySelector("script[type='application/json']");
    if (initial) this.draw(JSON.parse(initial.textContent));
    this.socket = new LiveSocket("/ws/topology/", {
      hello: () => (this.window !== "15m" ? { window: this.window } : null),
      onStatus: (state, message) => showStatus(this.statusOut, state, message),
      onSnapshot: (snapshot) => {
        if (snapshot.window === this.window) this.draw(snapshot);
      },
      onDelta: (delta) => this.pulse(delta.pulses || []),
    });
    setInterval(() => this.socket.send({ type: "snapshot" }), REFRESH_MS);
  }

  choose(window) {
    this.window = window;
    this.showWindow();
    const url = new URL(location.href);
    url.searchParams.set("window", window);
    if (this.root.dataset.compact === undefined) history.replaceState(null, "", url);
    this.socket.send({ type: "subscribe", window });
  }

  showWindow() {
    for (const button of this.root.querySelectorAll("[data-window]")) {
      button.setAttribute("aria-pressed", String(button.dataset.window === this.window));
    }
  }

  draw(topology) {
    const elements = elementsOf(topology);
    const signature = elements.map((element) => element.data.id).sort().join("|");
    this.empty.hidden = topology.nodes.length > 0;
    if (signature === this.signature) {
      this.cy.batch(() => elements.forEach((element) => this.cy.getElementById(element.data.id).data(element.data).classes(element.classes)));
    } else {
      this.cy.batch(() => {
        this.cy.elements().remove();
        this.cy.add(elements);
      });
      // Producer → type → consumer reads left to right; a phone has room only top to bottom.
      const rankDir = this.box.clientWidth < 600 ? "TB" : "LR";
      this.cy.layout({ name: "dagre", rankDir, nodeSep: rankDir === "LR" ? 36 : 30, rankSep: rankDir === "LR" ? 170 : 80, edgeSep: 10, padding: 24, fit: true, animate: false }).run();
      // Top to bottom, labels stay level and wrap, so that sibling edges' labels do not collide.
      this.cy.edges().style(rankDir === "LR" ? { "text-rotation": "autorotate" } : { "text-rotation": "none", "text-wrap": "wrap", "text-max-width": 64 });
      this.fitHeight();
      this.signature = signature;
    }
    const lagLegend = this.root.querySelector("[data-lag-legend]");
    if (lagLegend) lagLegend.hidden = !(topology.lag || []).length;  // only where a bus is watched
    this.box.dataset.nodes = topology.nodes.map((node) => node.id).join(" ");
    this.box.dataset.ready = "true";
    this.fillTable(topology);
    this.root.dispatchEvent(new CustomEvent("map:drawn"));  // layers drawn over the map redraw themselves
  }

  /** Size the box to the graph (within limits), then fit: a small map leaves no empty acre. */
  fitHeight() {
    const box = this.cy.elements().boundingBox();
    const limit = Math.max(300, Math.round(window.innerHeight * (this.root.dataset.compact === undefined ? 0.7 : 0.45)));
    const wanted = Math.round(Math.min(limit, Math.max(260, box.h * Math.min(1.2, (this.box.clientWidth - 48) / Math.max(box.w, 1)) + 64)));
    this.box.style.height = `${wanted}px`;
    this.cy.resize();
    this.cy.fit(undefined, 24);
    if (this.cy.zoom() > 1.3) this.cy.zoom({ level: 1.3, renderedPosition: { x: this.box.clientWidth / 2, y: this.box.clientHeight / 2 } });
    this.cy.center();
  }

  fillTable(topology) {
    if (!this.table) return;
    const names = new Map(topology.nodes.map((node) => [node.id, node.name]));
    const producers = new Map();
    for (const edge of topology.edges) if (edge.style !== "call" && edge.source.startsWith("service:")) producers.set(edge.target, [...(producers.get(edge.target) || []), names.get(edge.source)]);
    const rows = topology.edges.filter((edge) => edge.source.startsWith("type:")).map((edge) => {
      const tr = document.createElement("tr");
      const cells = [names.get(edge.source), (producers.get(edge.source) || []).join(", "), names.get(edge.target),
        formatRate(edge.rate), formatMs(edge.p50_ms) || "—", formatMs(edge.p95_ms) || "—", `${(edge.error_share * 100).toFixed(1)}%`];
      cells.forEach((value, index) => {
        const td = document.createElement("td");
        td.textContent = value;
        if (index >= 3) td.className = "num";
        tr.append(td);
      });
      return tr;
    });
    this.table.replaceChildren(...rows);
    const caption = document.querySelector("[data-map-empty-table]");
    if (caption) caption.hidden = rows.length > 0;
    this.fillCalls(topology, names);
    this.fillLag(topology);
  }

  fillCalls(topology, names) {
    const table = document.querySelector("[data-call-table]");
    if (!table) return;
    const rows = topology.edges.filter((edge) => edge.style === "call").map((edge) => {
      const tr = document.createElement("tr");
      const cells = [names.get(edge.source), names.get(edge.target), formatRate(edge.rate), formatMs(edge.p95_ms) || "—",
        `${(edge.error_share * 100).toFixed(1)}%`];
      cells.forEach((value, index) => {
        const td = document.createElement("td");
        td.textContent = value;
        if (index >= 2) td.className = "num";
        tr.append(td);
      });
      return tr;
    });
    table.replaceChildren(...rows);
    const caption = document.querySelector("[data-call-empty-table]");
    if (caption) caption.hidden = rows.length > 0;
  }

  fillLag(topology) {
    const body = document.querySelector("[data-lag-table]");
    if (!body) return;
    const rows = (topology.lag || []).map((row) => {
      const tr = document.createElement("tr");
      const unknown = row.unacknowledged === null || row.unacknowledged === undefined;
      const cells = [row.consumer, row.destination, row.bus, formatCount(row.waiting), unknown ? "—" : formatCount(row.unacknowledged)];
      cells.forEach((value, index) => {
        const td = document.createElement("td");
        td.textContent = value;
        if (index >= 3) td.className = "num";
        if (index === 4 && unknown) td.title = "AMQP does not tell how many are delivered but unacknowledged (that needs RabbitMQ's management plugin)";
        tr.append(td);
      });
      if (row.waiting + (row.unacknowledged || 0) > 0) tr.className = "lagging";
      return tr;
    });
    body.replaceChildren(...rows);
    const none = document.querySelector("[data-lag-none]");
    if (none) none.hidden = rows.length > 0 || (topology.lag_unavailable || []).length > 0;
    const down = document.querySelector("[data-lag-unavailable]");
    if (down) {
      const names = topology.lag_unavailable || [];
      down.hidden = names.length === 0;
      down.textContent = names.length ? `No answer from ${names.join(", ")}: its queues' lag is not shown.` : "";
    }
  }

  pulse(pulses) {
    let unknown = false;
    for (const pulse of pulses) {
      const edge = this.cy.getElementById(edgeId(pulse.source, pulse.target));
      if (edge.empty()) {
        unknown = true;
        continue;
      }
      edge.flashClass("pulse", DOT_MS);
      edge.target().flashClass("flash", DOT_MS);
      this.travel(edge);
    }
    // Something new (a service that started consuming, a new event type): fetch the whole map.
    if (unknown && !this.refetchTimer) {
      this.refetchTimer = setTimeout(() => {
        this.refetchTimer = null;
        this.socket.send({ type: "snapshot" });
      }, 600);
    }
  }

  travel(edge) {
    if (this.dots >= MAX_DOTS || document.hidden) return;
    this.dots += 1;
    const from = edge.source().position(), to = edge.target().position();
    const dot = this.cy.add({ group: "nodes", data: { id: `dot-${performance.now()}-${Math.random()}` }, classes: "dot", position: { ...from } });
    dot.ungrabify();
    dot.animate({ position: { ...to } }, { duration: DOT_MS, easing: "ease-in-out-sine", complete: () => {
      dot.remove();
      this.dots -= 1;
    } });
  }
}

for (const root of document.querySelectorAll("[data-service-map]")) root.serviceMap = new ServiceMap(root);

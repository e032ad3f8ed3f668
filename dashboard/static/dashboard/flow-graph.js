// The causal graph of one flow: Cytoscape.js with a left-to-right dagre layout.
// One node per observation (coloured by service), edges from cause to effect labelled by kind,
// dashed ghost nodes for expected steps that have not happened.

import cytoscape from "../vendor/cytoscape/cytoscape.esm.min.js";
import cytoscapeDagre from "../vendor/cytoscape-dagre/cytoscape-dagre.min.js";
import { colorOf, ghostAnchor, ghostsOf } from "./flow-format.js";

cytoscape.use(cytoscapeDagre);

const EDGE_LABELS = {
  caused_by: "caused",
  emitted_by: "emitted",
  child_of: "child",
  follows_from: "follows",
  delivers: "delivers",
  expected: "expected",
};
const LARGE_GRAPH = 400;
const MIN_READABLE_ZOOM = 0.62;
const PADDING = 24;
const graphs = new WeakMap();

/** The FlowGraph drawn in a container (tests and the live updater reach it through this). */
export function graphFor(container) {
  return graphs.get(container);
}

function cssVar(name, fallback) {
  const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return value || fallback;
}

function nodeLabel(name) {
  return name.length > 34 ? `${name.slice(0, 32)}…` : name;
}

function nodeWidth(label, service) {
  const longest = Math.max(label.length, service.length * 0.9);
  return Math.min(210, Math.max(84, Math.round(longest * 6.8 + 18)));
}

/** Cytoscape element definitions for a snapshot: plain data, no Cytoscape calls. */
export function graphElements(snapshot, colors) {
  const nodes = snapshot.nodes || [];
  // On large flows edge labels cost more to draw than they tell; the line styles still show the kind.
  const edgeLabels = nodes.length <= LARGE_GRAPH;
  const ids = new Set(nodes.map((n) => String(n.id)));
  const critical = new Set((snapshot.critical_path || []).map(String));
  const elements = [];
  for (const node of nodes) {
    const label = nodeLabel(node.name || "(unnamed)");
    elements.push({
      group: "nodes",
      data: {
        id: String(node.id),
        label: `${label}\n${node.service}`,
        color: colorOf(colors, node.service),
        width: nodeWidth(label, node.service || ""),
      },
      classes: [
        node.kind,
        node.status === "error" ? "error" : "",
        critical.has(String(node.id)) ? "critical" : "",
        (node.shared_with || []).length ? "shared" : "",
        node.skew_ms > 0 ? "skewed" : "",
      ].filter(Boolean).join(" "),
    });
  }
  for (const edge of snapshot.edges || []) {
    const source = String(edge.source), target = String(edge.target);
    if (!ids.has(source) || !ids.has(target)) continue;
    // Call and event edges are drawn differently (style), whatever relation joined them (kind).
    const onPath = edge.critical === true;
    const label = edgeLabels ? (edge.style === "call" ? "call" : EDGE_LABELS[edge.kind] || edge.kind) : "";
    elements.push({
      group: "edges",
      data: { id: `${source}>${target}:${edge.kind}`, source, target, label },
      classes: [edge.kind, `style-${edge.style || "internal"}`, onPath ? "critical" : ""].filter(Boolean).join(" "),
    });
  }
  for (const ghost of ghostsOf(snapshot)) {
    const label = nodeLabel(`expected: ${ghost.name}`);
    elements.push({
      group: "nodes",
      data: { id: ghost.id, label: `${label}\n${ghost.service || "?"}`, color: colorOf(colors, ghost.service), width: nodeWidth(label, ghost.service) },
      classes: "ghost",
    });
    const anchor = ghostAnchor(ghost, nodes);
    if (anchor) {
      elements.push({
        group: "edges",
        data: { id: `${anchor.id}>${ghost.id}:expected`, source: String(anchor.id), target: ghost.id, label: EDGE_LABELS.expected },
        classes: "expected",
      });
    }
  }
  return elements;
}

function graphStyle() {
  const text = cssVar("--text", "#1b2030");
  const muted = cssVar("--muted", "#5d667a");
  const surface = cssVar("--surface", "#ffffff");
  const border = cssVar("--border", "#dde1ea");
  const focus = cssVar("--focus", "#2563eb");
  const failed = cssVar("--failed", "#b91c1c");
  const stuck = cssVar("--stuck", "#b45309");
  const call = cssVar("--call", "#4f46e5");
  const event = cssVar("--event", "#0d9488");
  const critical = cssVar("--critical", "#f59e0b");
  return [
    {
      selector: "node",
      style: {
        shape: "round-rectangle",
        width: "data(width)",
        height: 40,
        label: "data(label)",
        "text-wrap": "wrap",
        "text-max-width": "data(width)",
        "text-valign": "center",
        "text-halign": "center",
        "font-size": 12,
        "line-height": 1.3,
        color: text,
        "background-color": "data(color)",
        "background-opacity": 0.14,
        "border-width": 2,
        "border-color": "data(color)",
        "min-zoomed-font-size": 6,
      },
    },
    { selector: "node.event", style: { "border-width": 3, "font-weight": 600 } },
    { selector: "node.span", style: { shape: "rectangle", "background-opacity": 0.08 } },
    // A shared step (stored once, serving several flows) has a double border; a step whose clock
    // appears behind its cause's, a dotted one.
    { selector: "node.shared", style: { "border-style": "double", "border-width": 6 } },
    { selector: "node.skewed", style: { "border-style": "dotted", "border-width": 4 } },
    { selector: "node.error", style: { "border-color": failed, "border-width": 3, "background-color": failed, "background-opacity": 0.12 } },
    {
      selector: "node.ghost",
      style: { "border-style": "dashed", "border-color": stuck, "background-opacity": 0, color: muted, "font-style": "italic" },
    },
    {
      selector: "node:selected",
      style: { "border-color": focus, "border-width": 4, "overlay-color": focus, "overlay-opacity": 0.12, "overlay-padding": 4 },
    },
    {
      selector: "edge",
      style: {
        width: 1.5,
        "curve-style": "bezier",
        "line-color": muted,
        "target-arrow-color": muted,
        "target-arrow-shape": "triangle",
        "arrow-scale": 0.9,
        label: "data(label)",
        "font-size": 9,
        color: muted,
        "text-background-color": surface,
        "text-background-opacity": 0.9,
        "text-background-padding": 2,
        "text-rotation": "autorotate",
        "min-zoomed-font-size": 8,
        opacity: 0.85,
      },
    },
    { selector: "edge.child_of", style: { "line-color": border, "target-arrow-color": border, width: 1.2 } },
    { selector: "edge.delivers", style: { "line-style": "dashed", "line-dash-pattern": [6, 3] } },
    { selector: "edge.follows_from", style: { "line-style": "dotted" } },
    { selector: "edge.style-call", style: { "line-color": call, "target-arrow-color": call, "line-style": "solid", width: 2.4, color: call } },
    { selector: "edge.style-event", style: { "line-color": event, "target-arrow-color": event, "line-style": "dashed", "line-dash-pattern": [7, 4], width: 1.8 } },
    { selector: "node.critical", style: { "underlay-color": critical, "underlay-opacity": 0.28, "underlay-padding": 5, "underlay-shape": "round-rectangle" } },
    { selector: "edge.critical", style: { "underlay-color": critical, "underlay-opacity": 0.35, "underlay-padding": 4, opacity: 1 } },
    { selector: "edge.expected", style: { "line-style": "dashed", "line-color": stuck, "target-arrow-color": stuck, color: stuck } },
    { selector: "edge.near", style: { "line-color": focus, "target-arrow-color": focus, width: 2.5, opacity: 1, color: text } },
  ];
}

/**
 * A linear-time layered layout for large flows, where dagre's crossing minimisation takes
 * seconds: rank = longest causal path from a root, one barycenter pass orders each rank.
 * `nodes` are [{id, width}], `edges` [{source, target}]; returns {id: {x, y}}, left to right.
 */
export function layeredPositions(nodes, edges, { rankSep = 30, nodeSep = 8, height = 40 } = {}) {
  const rank = new Map(nodes.map((n) => [n.id, 0]));
  const causes = new Map(nodes.map((n) => [n.id, []]));
  const effects = new Map(nodes.map((n) => [n.id, []]));
  for (const { source, target } of edges) {
    if (!rank.has(source) || !rank.has(target) || source === target) continue;
    causes.get(target).push(source);
    effects.get(source).push(target);
  }
  // Kahn's topological order, so ranks hold whatever order the nodes came in; nodes on a cycle
  // (bad data) keep the rank they had when the cycle was met.
  const waiting = new Map(nodes.map((n) => [n.id, causes.get(n.id).length]));
  const queue = nodes.filter((n) => waiting.get(n.id) === 0).map((n) => n.id);
  for (let head = 0; head < queue.length; head++) {
    const id = queue[head];
    for (const effect of effects.get(id)) {
      rank.set(effect, Math.max(rank.get(effect), rank.get(id) + 1));
      waiting.set(effect, waiting.get(effect) - 1);
      if (waiting.get(effect) === 0) queue.push(effect);
    }
  }
  const ranks = [];
  for (const node of nodes) (ranks[rank.get(node.id)] ||= []).push(node);
  const slot = new Map();
  const positions = {};
  let x = 0;
  for (const members of ranks) {
    if (!members) continue;
    const keyOf = (node) => {
      const placed = causes.get(node.id).filter((c) => slot.has(c));
      return placed.length ? placed.reduce((sum, c) => sum + slot.get(c), 0) / placed.length : Infinity;
    };
    const keyed = members.map((node, i) => ({ node, key: keyOf(node), i })).sort((a, b) => a.key - b.key || a.i - b.i);
    const widest = Math.max(...members.map((n) => n.width));
    keyed.forEach(({ node }, i) => {
      slot.set(node.id, i);
      positions[node.id] = { x: x + widest / 2, y: (i - (keyed.length - 1) / 2) * (height + nodeSep) };
    });
    x += widest + rankSep;
  }
  return positions;
}

function layoutOptions(nodeCount, cy) {
  if (nodeCount > LARGE_GRAPH) {
    const nodes = cy.nodes().map((n) => ({ id: n.id(), width: n.data("width") }));
    const edges = cy.edges().map((e) => ({ source: e.data("source"), target: e.data("target") }));
    return { name: "preset", positions: layeredPositions(nodes, edges), fit: false, animate: false };
  }
  return {
    name: "dagre",
    rankDir: "LR",
    nodeSep: 14,
    rankSep: 36,
    edgeSep: 8,
    fit: false,
    animate: false,
  };
}

export class FlowGraph {
  constructor(container, { onSelect }) {
    this.container = container;
    this.onSelect = onSelect;
    this.silent = false;
    this.userMoved = false;
    this.cy = null;
    graphs.set(container, this);
    // Once the user pans or zooms, live updates stop re-fitting the view under their hands.
    for (const type of ["wheel", "pointerdown"]) container.addEventListener(type, () => (this.userMoved = true), { passive: true });
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => this.cy?.style(graphStyle()));
  }

  /** Cytoscape is created on the first snapshot: its viewport options depend on the graph's size. */
  create(large) {
    this.cy = cytoscape({
      container: this.container,
      style: graphStyle(),
      minZoom: 0.05,
      maxZoom: 3,
      boxSelectionEnabled: false,
      selectionType: "single",
      // Large flows: draw a cached bitmap while panning and zooming instead of every edge.
      hideEdgesOnViewport: large,
      textureOnViewport: large,
    });
    this.cy.on("select", "node", (event) => {
      this.highlightEdges(event.target);
      if (!this.silent) this.onSelect(event.target.id(), "graph");
    });
    this.cy.on("unselect", "node", () => this.cy.edges().removeClass("near"));
  }

  /** Draw a snapshot. Elements are matched by id, so a newer snapshot only adds and removes
   * what changed; the layout runs again only then, and keeps the viewport once the user moved it. */
  render(snapshot, colors) {
    const elements = graphElements(snapshot, colors);
    if (!this.cy) this.create(elements.length > LARGE_GRAPH);
    const wanted = new Set(elements.map((e) => e.data.id));
    const stale = this.cy.elements().filter((e) => !wanted.has(e.id()));
    const fresh = elements.filter((e) => this.cy.getElementById(e.data.id).empty());
    this.cy.batch(() => {
      stale.remove();
      for (const element of elements) {
        const existing = this.cy.getElementById(element.data.id);
        if (existing.empty()) continue;
        existing.data(element.data);
        const wantedClasses = element.classes.split(" ");
        for (const name of ["error", "critical", "shared", "skewed", "style-call", "style-event", "style-internal"]) existing.toggleClass(name, wantedClasses.includes(name));
      }
      if (fresh.length) this.cy.add(fresh);
    });
    if (fresh.length || stale.length) {
      this.cy.layout(layoutOptions(this.cy.nodes().length, this.cy)).run();
      if (!this.userMoved) this.initialView();
    }
    this.container.dataset.nodeCount = String(this.cy.nodes().not(".ghost").length);
    this.container.dataset.ghostCount = String(this.cy.nodes(".ghost").length);
    this.container.dataset.edgeCount = String(this.cy.edges().length);
    this.container.dataset.callEdges = String(this.cy.edges(".style-call").length);
    this.container.dataset.eventEdges = String(this.cy.edges(".style-event").length);
    this.container.dataset.criticalNodes = String(this.cy.nodes(".critical").length);
    this.container.dataset.ready = "true";
  }

  /** Fit the whole flow when its labels stay readable; otherwise start at the flow's beginning
   * at a readable zoom (Fit still shows everything). The box comes from node positions and
   * sizes: Cytoscape's own bounding box measures every label and takes seconds on large flows. */
  initialView() {
    const nodes = this.cy.nodes();
    if (nodes.empty()) return;
    let x1 = Infinity, x2 = -Infinity, y1 = Infinity, y2 = -Infinity;
    nodes.forEach((node) => {
      const { x, y } = node.position();
      const half = node.data("width") / 2;
      x1 = Math.min(x1, x - half); x2 = Math.max(x2, x + half);
      y1 = Math.min(y1, y - 20); y2 = Math.max(y2, y + 20);
    });
    const width = this.container.clientWidth, height = this.container.clientHeight;
    const fitted = Math.min((width - 2 * PADDING) / Math.max(x2 - x1, 1), (height - 2 * PADDING) / Math.max(y2 - y1, 1), 1.5);
    const zoom = Math.max(fitted, MIN_READABLE_ZOOM);
    const left = fitted >= MIN_READABLE_ZOOM ? (width - (x2 - x1) * zoom) / 2 : PADDING;
    this.cy.viewport({ zoom, pan: { x: left - x1 * zoom, y: height / 2 - ((y1 + y2) / 2) * zoom } });
  }

  selectedId() {
    if (!this.cy) return null;
    const selected = this.cy.nodes(":selected");
    return selected.length ? selected[0].id() : null;
  }

  /** Select without telling the page (the page asked for it). */
  select(id) {
    if (!this.cy) return;
    this.silent = true;
    try {
      this.cy.nodes(":selected").unselect();
      const node = this.cy.getElementById(String(id));
      if (node.nonempty()) {
        node.select();
        const extent = this.cy.extent();
        const box = node.boundingBox();
        if (box.x1 < extent.x1 || box.x2 > extent.x2 || box.y1 < extent.y1 || box.y2 > extent.y2) {
          this.cy.animate({ center: { eles: node }, duration: 200 });
        }
      }
    } finally {
      this.silent = false;
    }
  }

  highlightEdges(node) {
    this.cy.edges().removeClass("near");
    node.connectedEdges().addClass("near");
  }

  /** The node reached by following an edge from the selected one (keyboard navigation). */
  neighbour(direction) {
    const id = this.selectedId();
    if (!id) return this.cy.nodes().first().id();
    const node = this.cy.getElementById(id);
    const next = direction === "forward" ? node.outgoers("node") : node.incomers("node");
    return next.nonempty() ? next.first().id() : id;
  }

  fit() {
    this.userMoved = false;
    this.cy?.fit(undefined, 24);
  }

  zoomBy(factor) {
    if (!this.cy) return;
    this.userMoved = true;
    const center = { x: this.container.clientWidth / 2, y: this.container.clientHeight / 2 };
    this.cy.zoom({ level: this.cy.zoom() * factor, renderedPosition: center });
  }

  /** Where a node is drawn, in page coordinates (for tests that click the canvas). */
  renderedCenterOf(id) {
    const node = this.cy.getElementById(String(id));
    if (node.empty()) return null;
    const position = node.renderedPosition();
    const box = this.container.getBoundingClientRect();
    return { x: box.left + position.x, y: box.top + position.y };
  }

  resize() {
    this.cy?.resize();
  }
}

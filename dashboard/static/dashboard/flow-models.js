// Each learned flow model as a directly-follows graph: steps as nodes, transitions as edges
// labelled with their share and latency; expected transitions solid, the others dashed.

import cytoscape from "../vendor/cytoscape/cytoscape.esm.min.js";
import cytoscapeDagre from "../vendor/cytoscape-dagre/cytoscape-dagre.min.js";

cytoscape.use(cytoscapeDagre);

const models = JSON.parse(document.getElementById("models-data").textContent);

function cssVar(name, fallback) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

function seconds(value) {
  if (value < 1) return `${Math.round(value * 1000)} ms`;
  if (value < 120) return `${value.toFixed(1)} s`;
  return `${Math.round(value / 60)} min`;
}

function stepId(step) {
  return `${step.service}\u0000${step.name}`;
}

function elements(model) {
  const nodes = model.graph.steps.map((step) => ({
    data: { id: stepId(step), label: `${step.name}\n${step.service}`, start: step.starts > 0 ? "yes" : "no" },
  }));
  const edges = model.graph.transitions.map((t, index) => ({
    data: {
      id: `t${index}`,
      source: stepId(t.source),
      target: stepId(t.target),
      expected: t.expected ? "yes" : "no",
      label: `${Math.round(t.share * 100)}% · ${seconds(t.p50)} / ${seconds(t.p99)}${t.expected ? ` · ≤ ${seconds(t.deadline_seconds)}` : ""}`,
    },
  }));
  return [...nodes, ...edges];
}

function draw(container, model) {
  const text = cssVar("--text", "#1b2030");
  const muted = cssVar("--muted", "#5d667a");
  const accent = cssVar("--accent", "#4f46e5");
  const surface = cssVar("--surface", "#ffffff");
  const border = cssVar("--border", "#dde1ea");
  const narrow = container.clientWidth < 600;
  cytoscape({
    container,
    elements: elements(model),
    userZoomingEnabled: true,
    wheelSensitivity: 0.2,
    boxSelectionEnabled: false,
    autoungrabify: true,
    // A phone is taller than wide: draw top to bottom there.
    layout: narrow
      ? { name: "dagre", rankDir: "TB", nodeSep: 12, rankSep: 90, padding: 10 }
      : { name: "dagre", rankDir: "LR", nodeSep: 30, rankSep: 150, padding: 20 },
    style: [
      {
        selector: "node",
        style: {
          shape: "round-rectangle",
          "background-color": surface,
          "border-color": border,
          "border-width": 1.5,
          label: "data(label)",
          "text-wrap": "wrap",
          "text-valign": "center",
          color: text,
          "font-size": 11,
          width: narrow ? 120 : 150,
          height: 40,
        },
      },
      { selector: "node[start = 'yes']", style: { "border-color": accent, "border-width": 2.5 } },
      {
        selector: "edge",
        style: {
          "curve-style": "bezier",
          "target-arrow-shape": "triangle",
          width: 2,
          "line-color": accent,
          "target-arrow-color": accent,
          label: "data(label)",
          "font-size": 10,
          color: text,
          "text-background-color": surface,
          "text-background-opacity": 0.9,
          "text-background-padding": 2,
          "text-rotation": "autorotate",
        },
      },
      { selector: "edge[expected = 'no']", style: { "line-style": "dashed", "line-color": muted, "target-arrow-color": muted, width: 1.5 } },
    ],
  });
}

for (const container of document.querySelectorAll(".model-graph")) {
  draw(container, models[Number(container.dataset.modelIndex)]);
}

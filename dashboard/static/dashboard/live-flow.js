// Keeps an open flow page current: subscribes to /ws/flows/<id>/ and hands every newer snapshot
// to the page (the "choreoscope:flow-snapshot" event of flow-page.js); new steps flash briefly.

import { graphFor } from "./flow-graph.js";
import { LiveSocket, showStatus } from "./live-socket.js";

const FLASH_MS = 2500;

function flowId() {
  const data = document.getElementById("flow-data");
  if (!data) return null;
  try {
    return JSON.parse(data.textContent).id;
  } catch {
    return null;
  }
}

function statusBadge() {
  const actions = document.querySelector(".flow-actions");
  if (!actions) return null;
  const styles = document.createElement("link");
  styles.rel = "stylesheet";
  styles.href = new URL("./live.css", import.meta.url).href;
  document.head.append(styles);
  const badge = document.createElement("span");
  badge.className = "live-status";
  badge.setAttribute("role", "status");
  actions.prepend(badge);
  return badge;
}

function flash(ids) {
  const graph = graphFor(document.getElementById("flow-graph"));
  if (!graph || !ids.length) return;
  if (!graph.cy.data("liveStyle")) {
    const accent = getComputedStyle(document.documentElement).getPropertyValue("--accent").trim() || "#4f46e5";
    graph.cy.style().selector("node.fresh").style({ "border-width": 4, "border-color": accent, "underlay-color": accent,
      "underlay-opacity": 0.25, "underlay-padding": 8 }).update();
    graph.cy.data("liveStyle", true);
  }
  for (const id of ids) graph.cy.getElementById(String(id)).flashClass("fresh", FLASH_MS);
  const box = document.getElementById("flow-graph");
  box.dataset.fresh = ids.join(" ");
}

function apply(flow) {
  document.dispatchEvent(new CustomEvent("choreoscope:flow-snapshot", { detail: flow }));
}

function start() {
  const id = flowId();
  if (id === null) return;
  const badge = statusBadge();
  let known = new Set();
  const remember = (flow) => {
    known = new Set((flow.nodes || []).map((node) => String(node.id)));
  };
  const initial = document.getElementById("flow-data");
  remember(JSON.parse(initial.textContent));
  new LiveSocket(`/ws/flows/${encodeURIComponent(id)}/`, {
    onStatus: (state, message) => showStatus(badge, state, message),
    onSnapshot: (message) => {
      if (!message.flow) return;
      const fresh = (message.flow.nodes || []).map((node) => String(node.id)).filter((nodeId) => !known.has(nodeId));
      apply(message.flow);
      remember(message.flow);
      flash(fresh);
    },
    onDelta: (message) => {
      if (message.merged_into) {
        // A late observation joined this flow to an older one: follow it there.
        location.assign(`${location.pathname.replace(/\/flows\/\d+\//, `/flows/${message.merged_into}/`)}`);
        return;
      }
      apply(message.flow);
      remember(message.flow);
      flash((message.new || []).map(String));
    },
  });
  document.body.dataset.live = "true";
}

start();

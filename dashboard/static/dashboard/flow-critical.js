// The flow's critical path panel: the chain of steps that decided the flow's end-to-end time
// (snapshot.critical_path, highlighted in the graph) and each service's time on it: its own
// work, the time it waited on calls to others, and the time its reactions sat queued.

import { colorOf, formatDuration } from "./flow-format.js";

function h(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function percent(share) {
  return `${Math.round(share * 100)}%`;
}

/** Draw the panel into `container` from a flow snapshot; `colors` are the page's service colours. */
export function renderCriticalPath(container, snapshot, colors) {
  if (!container) return;
  const services = snapshot.critical_path_services || [];
  const steps = (snapshot.critical_path || []).length;
  const total = snapshot.critical_path_ms || 0;
  container.dataset.steps = String(steps);
  if (!steps) {
    container.replaceChildren(h("p", "muted", "No critical path yet: the flow has no steps."));
    return;
  }
  const summary = h("p", "critical-summary");
  summary.append(h("strong", "", formatDuration(total)), ` along ${steps} step${steps === 1 ? "" : "s"} through ${services.length} service${services.length === 1 ? "" : "s"}`);
  const bar = h("div", "critical-bar");
  bar.setAttribute("role", "img");
  bar.setAttribute("aria-label", services.map((s) => `${s.service} ${percent(s.share)}`).join(", "));
  for (const entry of services) {
    if (entry.share <= 0) continue;
    const part = h("span", "critical-part");
    part.style.flexGrow = String(entry.share);
    part.style.backgroundColor = colorOf(colors, entry.service);
    part.title = `${entry.service}: ${percent(entry.share)}`;
    bar.append(part);
  }
  const table = h("table", "table critical-services");
  const head = h("tr");
  const columns = [
    ["Service", ""],
    ["Share", "its own work and queueing, as a share of the path's time"],
    ["Own work", "time its steps on the path spent working"],
    ["Waiting", "time its steps on the path waited for another service's answer (calls)"],
    ["Queued", "time between an event and this service's reaction to it"],
  ];
  for (const [label, title] of columns) {
    const th = h("th", title ? "num" : "", label);
    th.scope = "col";
    if (title) th.title = title;
    head.append(th);
  }
  table.append(h("thead"));
  table.tHead.append(head);
  const body = h("tbody");
  for (const entry of services) {
    const row = h("tr");
    row.dataset.service = entry.service;
    const name = h("td");
    const swatch = h("span", "swatch");
    swatch.setAttribute("aria-hidden", "true");
    swatch.style.backgroundColor = colorOf(colors, entry.service);
    name.append(swatch, entry.service || "(unknown)");
    row.append(name, h("td", "num", percent(entry.share)), h("td", "num", formatDuration(entry.self_ms)),
      h("td", "num", entry.waiting_ms ? formatDuration(entry.waiting_ms) : "—"), h("td", "num", entry.queued_ms ? formatDuration(entry.queued_ms) : "—"));
    body.append(row);
  }
  table.append(body);
  const scroller = h("div", "critical-table-wrap");  // five columns scroll sideways on a phone
  scroller.append(table);
  container.replaceChildren(summary, bar, scroller);
}

// The alerts page: incidents and alerts kept current over /ws/alerts/ (its messages are declared
// in dashboard/live_messages.py: AlertsSnapshot, AlertsDelta), acknowledge buttons.
// Every text from the server is set with textContent.

import { LiveSocket, showStatus } from "./live-socket.js";

const initial = JSON.parse(document.getElementById("alerts-data").textContent);
const state = initial.state || "";
const incidentRows = document.getElementById("incident-rows");
const alertRows = document.getElementById("alert-rows");
const status = document.getElementById("alerts-live");
const MAX_ROWS = 100;
let alerts = new Map(initial.alerts.map((alert) => [alert.id, alert]));

function cell(row, text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  if (text instanceof Node) td.append(text);
  else td.textContent = text;
  row.append(td);
  return td;
}

function stepChip(text) {
  const span = document.createElement("span");
  span.className = "missing-step";
  span.textContent = text;
  return span;
}

function ago(iso) {
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 60) return `${Math.round(seconds)} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

function timeNode(iso, text) {
  const time = document.createElement("time");
  time.dateTime = iso;
  time.textContent = text;
  return time;
}

function emptyRow(tbody, colspan, text) {
  const row = document.createElement("tr");
  row.className = "empty-row";
  const td = cell(row, text);
  td.colSpan = colspan;
  tbody.append(row);
}

function renderIncidents(groups) {
  incidentRows.replaceChildren();
  for (const group of groups) {
    const row = document.createElement("tr");
    cell(row, group.flow_type);
    cell(row, stepChip(group.step));
    cell(row, group.service || "—");
    cell(row, group.after || "flow start");
    const count = document.createElement("strong");
    count.textContent = String(group.count);
    cell(row, count, "num");
    cell(row, String(group.open), "num");
    cell(row, timeNode(group.first_opened, ago(group.first_opened)));
    incidentRows.append(row);
  }
  if (!groups.length) emptyRow(incidentRows, 7, "Nothing is stuck. Flows that miss an expected step show up here.");
}

function renderAlerts(flashIds = new Set()) {
  alertRows.replaceChildren();
  const shown = [...alerts.values()]
    .filter((alert) => !state || alert.state === state)
    .sort((a, b) => (b.opened_at === a.opened_at ? b.id - a.id : b.opened_at.localeCompare(a.opened_at)))
    .slice(0, MAX_ROWS);
  for (const alert of shown) {
    const row = document.createElement("tr");
    row.dataset.alert = String(alert.id);
    if (flashIds.has(alert.id)) row.className = "flash";
    const link = document.createElement("a");
    link.href = `/flows/${alert.flow_id}/`;
    link.textContent = alert.flow_key;
    cell(row, link);
    cell(row, alert.flow_type);
    const missing = document.createElement("span");
    missing.append(stepChip(alert.step));
    if (alert.after) {
      const after = document.createElement("span");
      after.className = "muted";
      after.textContent = ` after ${alert.after}`;
      missing.append(after);
    }
    cell(row, missing);
    cell(row, alert.service || "—");
    cell(row, timeNode(alert.due_at, ago(alert.due_at)));
    const badge = document.createElement("span");
    badge.className = `badge badge-alert-${alert.state}`;
    badge.textContent = alert.state;
    const actions = cell(row, badge, "state-cell");
    if (alert.state === "open") {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "small-button";
      button.dataset.ack = String(alert.id);
      button.textContent = "Acknowledge";
      actions.append(button);
    }
    alertRows.append(row);
  }
  if (!shown.length) emptyRow(alertRows, 6, state ? "No alerts in this state." : "No alerts.");
}

function renderCounts(counts) {
  for (const [name, n] of Object.entries(counts || {})) {
    const node = document.querySelector(`[data-count="${name}"]`);
    if (node) node.textContent = String(n);
  }
}

function applySnapshot(snapshot) {
  alerts = new Map(snapshot.alerts.map((alert) => [alert.id, alert]));
  renderIncidents(snapshot.groups);
  renderAlerts();
  renderCounts(snapshot.counts);
}

function applyDelta(delta) {
  const changed = new Set();
  for (const alert of delta.alerts) {
    alerts.set(alert.id, alert);
    changed.add(alert.id);
  }
  renderIncidents(delta.groups);
  renderAlerts(changed);
  renderCounts(delta.counts);
}

async function acknowledge(button) {
  const csrf = document.querySelector("#ack-csrf input[name=csrfmiddlewaretoken]").value;
  button.disabled = true;
  const response = await fetch(`/api/alerts/${button.dataset.ack}/ack`, {
    method: "POST",
    headers: { "X-CSRFToken": csrf },
    credentials: "same-origin",
  });
  const body = await response.json();
  if (response.ok) {
    alerts.set(body.id, body);
    renderAlerts(new Set([body.id]));
  } else {
    button.disabled = false;
    button.title = body.error || "Could not acknowledge";
  }
}

alertRows.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-ack]");
  if (button) acknowledge(button);
});

new LiveSocket("/ws/alerts/", {
  onStatus: (state, message) => showStatus(status, state, message),
  onSnapshot: applySnapshot,
  onDelta: applyDelta,
});

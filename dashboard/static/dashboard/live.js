// The live stream page (/live/): rows from /ws/stream/, newest (highest id) first, in a bounded
// buffer. Filters are applied by the server; pausing freezes the table while the buffer keeps
// filling. An observation comes twice, in either order: when it is stored (no flow yet) and when
// it is correlated (its flow); the second fills in the row the first made. The server lists at
// most so many new rows a second; above that it sends the newest and counts the matching rows it
// left out, and the page says it is showing a sample.

import { LiveSocket, showStatus } from "./live-socket.js";

const config = JSON.parse(document.getElementById("live-config").textContent);
const rowsBody = document.getElementById("live-rows");
const empty = document.getElementById("live-empty");
const rateOut = document.getElementById("live-rate");
const matchedOut = document.getElementById("live-matched");
const matchedRateOut = document.getElementById("live-matched-rate");
const samplingOut = document.getElementById("live-sampling");
const statusOut = document.getElementById("live-status");
const pauseButton = document.getElementById("live-pause");
const message = document.getElementById("live-message");
const form = document.getElementById("live-filters");

const RATE_WINDOW_MS = 10000;
// floor: the newest id when the table was cleared; older rows (their correlated versions, a
// resync's snapshot) do not come back.
const state = {
  items: [],
  byId: new Map(),
  floor: 0,
  paused: false,
  unseen: 0,
  filters: { ...config.filters },
  arrivals: [], // per delta: when, how many stored, how many new matching rows, how many left out
  countingSince: performance.now(),
};
const FLOW_FIELDS = ["service", "flow_id", "flow_key", "flow_status"];

function cell(text, className = "") {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text;
  return td;
}

function clock(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "—";
  const pad = (n, width = 2) => String(n).padStart(width, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

function flowHref(item) {
  return `${config.flows_url}${encodeURIComponent(item.flow_id)}/`;
}

function rowFor(item) {
  const tr = document.createElement("tr");
  tr.dataset.id = item.id;
  tr.className = `live-row row-${item.kind}${item.status === "error" ? " is-error" : ""}`;
  const time = cell("", "cell-time");
  const stamp = document.createElement("time");
  stamp.dateTime = item.time || item.received_at;
  stamp.textContent = clock(item.time || item.received_at);
  stamp.title = `${item.time} (received ${item.received_at})`;
  time.append(stamp);
  const type = cell("", "cell-type");
  const kind = document.createElement("span");
  kind.className = `kind kind-${item.kind}`;
  kind.textContent = item.kind === "event" ? "event" : "span";
  const name = document.createElement("span");
  name.className = "type-name";
  name.textContent = item.name;
  type.append(kind, name);
  const flow = cell("", "cell-flow");
  if (item.flow_id) {
    const link = document.createElement("a");
    link.href = flowHref(item);
    link.textContent = item.flow_key;
    flow.append(link);
  } else {
    // Not correlated yet: the business key it carries, if any.
    const pending = Object.assign(document.createElement("span"), { className: "muted", textContent: item.flow_key || "correlating…" });
    pending.title = "correlating…";
    flow.append(pending);
  }
  const status = cell("", "cell-status");
  const badge = document.createElement("span");
  // An error shows as such; otherwise the flow's status, once correlation has placed it.
  const shown = item.status === "error" ? "error" : item.flow_status || "correlating";
  badge.className = `badge badge-${item.status === "error" ? "failed" : item.flow_status ? shown : "pending"}`;
  badge.textContent = shown;
  status.append(badge);
  tr.title = `${item.time} · ${item.kind} ${item.name} · ${item.service}`;
  tr.append(time, cell(item.service, "cell-service"), type, flow, status);
  return tr;
}

function render(change = null) {
  empty.hidden = state.items.length > 0;
  const fresh = change ? change.fresh : [];
  const newestShown = Number(rowsBody.firstElementChild?.dataset.id || 0);
  if (change === null || fresh.some((item) => item.id < newestShown)) {
    // A first view, or rows that belong between the ones shown: draw it all again.
    const isFresh = new Set(fresh.map((item) => item.id));
    rowsBody.replaceChildren(
      ...state.items.map((item) => {
        const row = rowFor(item);
        if (isFresh.has(item.id)) row.classList.add("fresh");
        return row;
      }),
    );
    return;
  }
  for (const item of change.changed) rowsBody.querySelector(`tr[data-id="${item.id}"]`)?.replaceWith(rowFor(item));
  rowsBody.prepend(
    ...fresh.map((item) => {
      const row = rowFor(item);
      row.classList.add("fresh");
      return row;
    }),
  );
  while (rowsBody.children.length > state.items.length) rowsBody.lastElementChild.remove();
}

function admit(items) {
  // Known rows take the flow their correlated version brings; new rows are merged in by id.
  const fresh = [];
  const changed = [];
  for (const item of items) {
    if (item.id <= state.floor) continue;
    const known = state.byId.get(item.id);
    if (!known) {
      state.byId.set(item.id, item);
      fresh.push(item);
    } else if (item.flow_id && FLOW_FIELDS.some((name) => known[name] !== item[name])) {
      for (const name of FLOW_FIELDS) known[name] = item[name];
      changed.push(known);
    }
  }
  fresh.sort((a, b) => b.id - a.id);
  if (fresh.length) {
    state.items = state.items.concat(fresh).sort((a, b) => b.id - a.id);
    for (const dropped of state.items.splice(config.buffer)) state.byId.delete(dropped.id);
  }
  return { fresh: fresh.filter((item) => state.byId.has(item.id)), changed };
}

function countArrivals(delta) {
  state.arrivals.push({ at: performance.now(), total: delta.total || 0, matched: delta.matched || 0, leftOut: delta.left_out || 0 });
}

const wholeNumber = new Intl.NumberFormat();

function perSecond(count) {
  // Over the window, or over the time since counting began if that is shorter (a page just opened).
  const span = Math.max(1000, Math.min(RATE_WINDOW_MS, performance.now() - state.countingSince));
  const rate = count / (span / 1000);
  return rate >= 10 ? wholeNumber.format(Math.round(rate)) : rate.toFixed(1);
}

function showRate() {
  const now = performance.now();
  while (state.arrivals.length && now - state.arrivals[0].at > RATE_WINDOW_MS) state.arrivals.shift();
  const sums = { total: 0, matched: 0, leftOut: 0 };
  for (const arrival of state.arrivals) for (const name in sums) sums[name] += arrival[name];
  rateOut.textContent = perSecond(sums.total);
  matchedOut.hidden = !hasFilters(state.filters);
  matchedRateOut.textContent = perSecond(sums.matched);
  // The page says when it lists a sample: the true rate of matching rows, and how many it left out.
  samplingOut.hidden = sums.leftOut === 0;
  if (sums.leftOut) {
    samplingOut.querySelector("[data-listed]").textContent = perSecond(sums.matched - sums.leftOut);
    samplingOut.querySelector("[data-matched]").textContent = perSecond(sums.matched);
    samplingOut.querySelector("[data-verb]").textContent = hasFilters(state.filters) ? "match" : "arrive";
    samplingOut.querySelector("[data-left-out]").textContent = wholeNumber.format(sums.leftOut);
  }
}

function showPaused() {
  pauseButton.setAttribute("aria-pressed", String(state.paused));
  pauseButton.textContent = state.paused ? `Resume${state.unseen ? ` (${state.unseen} new)` : ""}` : "Pause";
  if (state.paused) showStatus(statusOut, "paused");
}

function hasFilters(filters) {
  return Object.values(filters).some(Boolean);
}

const socket = new LiveSocket("/ws/stream/", {
  hello: () => (hasFilters(state.filters) ? { filters: state.filters } : null),
  onStatus: (status, text) => {
    if (status === "error") {
      message.hidden = false;
      message.textContent = text;
      return;
    }
    if (!state.paused || status !== "live") showStatus(statusOut, status, text);
  },
  onSnapshot: (snapshot) => {
    state.items = [];
    state.byId = new Map();
    admit(snapshot.items);
    if (!state.paused) render();
  },
  onDelta: (delta) => {
    countArrivals(delta);
    showRate();
    const change = admit(delta.items || []);
    if (state.paused) {
      state.unseen += change.fresh.length;
      showPaused();
    } else if (change.fresh.length || change.changed.length) {
      render(change);
    }
  },
});

pauseButton.addEventListener("click", () => {
  state.paused = !state.paused;
  if (!state.paused) {
    state.unseen = 0;
    render();
    showStatus(statusOut, "live");
  }
  showPaused();
});

document.getElementById("live-clear").addEventListener("click", () => {
  state.floor = Math.max(state.floor, state.items[0]?.id || 0); // items are newest first
  state.items = [];
  state.byId = new Map();
  state.unseen = 0;
  render();
  showPaused();
});

function readFilters() {
  const data = new FormData(form);
  return { service: data.get("service").trim(), type: data.get("type").trim(), key: data.get("key").trim(), status: data.get("status") };
}

function applyFilters(filters) {
  state.filters = filters;
  state.arrivals = []; // the matching rate and the sample are of the new filters
  state.countingSince = performance.now();
  showRate();
  message.hidden = true;
  const query = new URLSearchParams(Object.entries(filters).filter(([, value]) => value));
  history.replaceState(null, "", `${location.pathname}${query.toString() ? `?${query}` : ""}`);
  socket.send({ type: "subscribe", filters });
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  applyFilters(readFilters());
});
form.addEventListener("reset", () => {
  // The reset restores the values the page was loaded with; clear them instead.
  setTimeout(() => {
    for (const input of form.querySelectorAll("input")) input.value = "";
    form.querySelector("select").value = "";
    applyFilters(readFilters());
  });
});
form.querySelector("select").addEventListener("change", () => applyFilters(readFilters()));

setInterval(showRate, 1000);
document.body.dataset.liveReady = "true";

// Plain functions shared by the flow graph, timeline and page: times, durations, colours, order.

// Distinguishable on light and dark backgrounds; a flow rarely touches more than ten services.
export const SERVICE_PALETTE = [
  "#4c6ef5", "#e8590c", "#2f9e44", "#ae3ec9", "#1098ad",
  "#d6336c", "#f59f00", "#5c940d", "#7048e8", "#c2255c",
];
const FALLBACK_COLOR = "#868e96";

/** Milliseconds since the epoch (fractional) of a node's start or end. */
export function nodeStartMs(node) {
  if (typeof node.start_ns === "number") return node.start_ns / 1e6;
  return isoToMs(node.start);
}

export function nodeEndMs(node) {
  if (typeof node.end_ns === "number") return node.end_ns / 1e6;
  if (node.end) return isoToMs(node.end);
  return nodeStartMs(node);
}

/** An ISO 8601 instant to fractional milliseconds, keeping microseconds Date.parse would drop. */
export function isoToMs(value) {
  if (value === null || value === undefined || value === "") return NaN;
  const whole = Date.parse(value);
  const fraction = /\.(\d+)/.exec(String(value));
  if (!fraction || fraction[1].length <= 3) return whole;
  return whole + Number("0." + fraction[1].slice(3));  // digits past the millisecond
}

/** "0.4 ms", "12 ms", "1.24 s", "3 m 12 s", "2 h 05 m", "3 d 4 h". */
export function formatDuration(ms) {
  if (!Number.isFinite(ms)) return "–";
  const abs = Math.abs(ms);
  if (abs < 1) return `${ms.toFixed(2)} ms`;
  if (abs < 10) return `${ms.toFixed(1)} ms`;
  if (abs < 1000) return `${Math.round(ms)} ms`;
  if (abs < 10_000) return `${(ms / 1000).toFixed(2)} s`;
  if (abs < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const seconds = Math.round(abs / 1000);
  const sign = ms < 0 ? "-" : "";
  if (seconds < 3600) return `${sign}${Math.floor(seconds / 60)} m ${seconds % 60} s`;
  if (seconds < 86_400) return `${sign}${Math.floor(seconds / 3600)} h ${String(Math.floor(seconds / 60) % 60).padStart(2, "0")} m`;
  return `${sign}${Math.floor(seconds / 86_400)} d ${Math.floor(seconds / 3600) % 24} h`;
}

/** A wall-clock time with milliseconds, in the viewer's time zone. */
export function formatClock(ms) {
  if (!Number.isFinite(ms)) return "–";
  const date = new Date(ms);
  const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  return `${time}.${String(date.getMilliseconds()).padStart(3, "0")}`;
}

export function formatDateTime(ms) {
  if (!Number.isFinite(ms)) return "–";
  const date = new Date(ms);
  return `${date.toLocaleDateString([], { year: "numeric", month: "short", day: "numeric" })} ${formatClock(ms)}`;
}

/** One colour per service, in the order the flow reached them (stable while a flow grows). */
export function serviceColors(services) {
  const colors = new Map();
  for (const service of services) {
    if (!colors.has(service)) colors.set(service, SERVICE_PALETTE[colors.size % SERVICE_PALETTE.length]);
  }
  return colors;
}

export function colorOf(colors, service) {
  return colors.get(service) || FALLBACK_COLOR;
}

/** Services in the order the flow's snapshot lists them, then any only its nodes or missing steps name. */
export function servicesOf(snapshot) {
  const seen = new Set(snapshot.services || []);
  for (const node of snapshot.nodes || []) seen.add(node.service);
  for (const missing of snapshot.missing || []) if (missing.service) seen.add(missing.service);
  return [...seen];
}

/** The flow's missing steps as ghost entries with stable ids. */
export function ghostsOf(snapshot) {
  return (snapshot.missing || []).map((missing, index) => ({
    id: `missing:${missing.service || ""}:${missing.step || index}`,
    name: missing.step || "expected step",
    service: missing.service || "",
    after: missing.after || "",
    afterService: missing.after_service || "",
    dueMs: typeof missing.due_at === "number" ? missing.due_at * 1000 : isoToMs(missing.due_at),
    origin: missing.origin || "",
  }));
}

/** The node a ghost waits after: the last node (in causal order) with the awaited step's name. */
export function ghostAnchor(ghost, nodes) {
  if (!ghost.after) return null;
  let anchor = null;
  for (const node of nodes) {
    if (node.name === ghost.after && (!ghost.afterService || node.service === ghost.afterService)) anchor = node;
  }
  return anchor;
}

/** Plain-language "where the flow is now", from the snapshot alone. */
export function flowPosition(snapshot, nowMs) {
  const nodes = snapshot.nodes || [];
  const ghosts = ghostsOf(snapshot);
  if (snapshot.status === "stuck" && ghosts.length) {
    const first = ghosts[0];
    const overdue = Number.isFinite(first.dueMs) ? `, overdue by ${formatDuration(nowMs - first.dueMs)}` : "";
    const who = first.service ? ` from ${first.service}` : "";
    const more = ghosts.length > 1 ? ` (and ${ghosts.length - 1} more step${ghosts.length > 2 ? "s" : ""})` : "";
    return `Waiting for ${first.name}${who}${overdue}${more}`;
  }
  if (!nodes.length) return "No observations yet";
  const last = nodes.reduce((a, b) => ((b.order ?? 0) >= (a.order ?? 0) ? b : a));
  const lastSeen = isoToMs(snapshot.last_seen_at);
  const ago = Number.isFinite(lastSeen) ? ` ${formatDuration(nowMs - lastSeen)} ago` : "";
  if (snapshot.status === "completed") return `Completed at ${last.name} in ${last.service}`;
  if (snapshot.status === "failed") {
    const failed = nodes.filter((n) => n.status === "error").pop() || last;
    return `Failed at ${failed.name} in ${failed.service}`;
  }
  return `Last step: ${last.name} in ${last.service},${ago}`;
}

// The demo shop's faults panel: apply a service's faults without leaving the page, and keep
// each service's state and backlog fresh (an offline service's backlog grows, then drains).
const panel = document.getElementById("demo-faults");
const REFRESH_MS = 2000;

function rowOf(service) {
  return [...panel.querySelectorAll("form.fault-row")].find((form) => form.dataset.service === service);
}

function say(text, kind = "info") {
  const message = panel.querySelector(".demo-message");
  message.textContent = text;
  message.dataset.kind = kind;
}

function render(state, { inputs }) {
  const running = panel.querySelector(".demo-running");
  running.dataset.running = state.running ? "yes" : "no";
  running.textContent = state.running ? "demo running" : "demo not running";
  panel.querySelector(".demo-faulty").textContent = state.faulty.join(", ") || "all services healthy";
  for (const service of state.services) {
    const form = rowOf(service.service);
    if (!form) continue;
    const badge = form.querySelector(".fault-state");
    badge.dataset.state = service.state;
    badge.textContent = service.state;
    const backlog = form.querySelector(".fault-backlog");
    backlog.dataset.busy = service.backlog > 20 ? "yes" : "no";
    form.querySelector(".fault-backlog-value").textContent = String(service.backlog);
    form.dataset.faulty = service.description === "healthy" ? "no" : "yes";
    form.title = `${service.service}: ${service.description}`;
    if (inputs && !form.contains(document.activeElement)) {
      form.elements.drop.value = String(service.drop_percent);
      form.elements.slow.value = String(service.slow_seconds);
      form.elements.fail.value = String(service.fail_percent);
      form.elements.offline.checked = service.offline;
    }
  }
}

async function send(form) {
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    const response = await fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      say(body.error || `Not applied (${response.status}).`, "error");
      return;
    }
    render(body, { inputs: true });
    const service = form.dataset.service;
    const row = service && body.services.find((item) => item.service === service);
    say(row ? `${service}: ${row.description}.` : "All services healed.");
  } catch {
    say("Choreoscope did not answer; the faults may not have changed.", "error");
  } finally {
    button.disabled = false;
  }
}

async function refresh() {
  try {
    const response = await fetch(panel.dataset.url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (response.ok) render(await response.json(), { inputs: false });
  } catch {
    // The next refresh tries again.
  }
}

if (panel) {
  panel.addEventListener("submit", (event) => {
    event.preventDefault();
    send(event.target);
  });
  setInterval(() => {
    if (!document.hidden) refresh();
  }, REFRESH_MS);
}

// The declared map (AsyncAPI documents, GET /api/contracts) over the service map, as a layer the
// "Declared contracts" box turns on: a declared edge that carried nothing in the window is drawn
// dashed (with the declared-only services and event types it needs), an observed edge nobody
// declared is marked. The map redraws itself every few seconds; the layer follows ("map:drawn").

const PAGE_LIMIT = 500;

function cssVar(name, fallback) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

/** The map edges a drift row is about: producer → type, and type → consumer when it names one. */
export function edgesOf(row) {
  const type = `type:${row.message}`;
  if (row.consumer) return [{ source: type, target: `service:${row.consumer}` }];
  return row.producer ? [{ source: `service:${row.producer}`, target: type }] : [];
}

async function driftRows(window) {
  const rows = [];
  let cursor = "";
  do {
    const query = new URLSearchParams({ window, limit: String(PAGE_LIMIT) });
    if (cursor) query.set("cursor", cursor);
    const answer = await fetch(`/api/contracts?${query}`, { headers: { Accept: "application/json" } });
    if (!answer.ok) throw new Error(`GET /api/contracts answered ${answer.status}`);
    const page = await answer.json();
    rows.push(...page.results);
    cursor = page.next || "";
  } while (cursor);
  return rows;
}

class ContractsOverlay {
  constructor(root, toggle) {
    this.root = root;
    this.map = root.serviceMap;
    this.toggle = toggle;
    this.legend = root.querySelector(".contracts-legend");
    this.rows = [];
    this.fetchedFor = "";
    toggle.addEventListener("change", () => this.refresh());
    // The map restyles itself when the colour scheme changes, dropping this layer's styles.
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
      this.map.cy.scratch("_contractsStyled", false);
      this.refresh();
    });
    root.addEventListener("map:drawn", () => this.refresh());
  }

  async refresh() {
    this.legend.hidden = !this.toggle.checked;
    if (!this.toggle.checked) return this.clear();
    const window = this.map.window;
    // The contracts answer is recomputed every 5 s on the server; the map redraws about as often.
    if (this.fetchedFor !== window || Date.now() - this.fetchedAt > 5000) {
      try {
        this.rows = await driftRows(window);
      } catch (error) {
        this.rows = [];
        console.warn(error);
      }
      this.fetchedFor = window;
      this.fetchedAt = Date.now();
    }
    this.draw();
  }

  clear() {
    const cy = this.map.cy;
    cy.batch(() => {
      cy.elements(".declared-only").remove();
      cy.elements(".undeclared").removeClass("undeclared");
    });
    delete this.map.box.dataset.overlay;
  }

  draw() {
    const cy = this.map.cy;
    this.styleOnce(cy);
    let added = false;
    const marked = [];
    cy.batch(() => {
      cy.elements(".undeclared").removeClass("undeclared");
      for (const row of this.rows) {
        for (const { source, target } of edgesOf(row)) {
          const id = `${source}->${target}`;
          if (row.kind === "undeclared") {
            const edge = cy.getElementById(id);
            if (edge.nonempty()) {
              edge.addClass("undeclared");
              marked.push(`undeclared ${id}`);
            }
          } else if (row.kind === "declared_not_observed") {
            for (const node of [source, target]) {
              if (cy.getElementById(node).empty()) {
                const [kind, name] = [node.startsWith("service:") ? "service" : "event_type", node.slice(node.indexOf(":") + 1)];
                cy.add({ group: "nodes", data: { id: node, name, kind, width: Math.max(70, Math.min(220, name.length * 7.2 + 24)) },
                  classes: `${kind} declared-only` });
                added = true;
              }
            }
            if (cy.getElementById(id).empty()) {
              cy.add({ group: "edges", data: { id, source, target, label: "declared, not seen", weight: 1.5 }, classes: "declared-only silent" });
              added = true;
            }
            marked.push(`silent ${id}`);
          }
        }
      }
    });
    if (added) {
      const rankDir = this.map.box.clientWidth < 600 ? "TB" : "LR";
      cy.layout({ name: "dagre", rankDir, nodeSep: rankDir === "LR" ? 36 : 30, rankSep: rankDir === "LR" ? 170 : 80, edgeSep: 10, padding: 24, fit: true, animate: false }).run();
      this.map.fitHeight();
    }
    this.map.box.dataset.overlay = marked.sort().join("|");
  }

  styleOnce(cy) {
    if (cy.scratch("_contractsStyled")) return;
    cy.scratch("_contractsStyled", true);
    const muted = cssVar("--muted", "#5d667a"), stuck = cssVar("--stuck", "#b45309");
    cy.style()
      .selector("node.declared-only").style({ opacity: 0.55, "border-style": "dashed", "border-width": 1.5, "border-color": muted })
      .selector("edge.silent").style({ "line-style": "dashed", "line-color": muted, "target-arrow-color": muted, opacity: 0.8, color: muted })
      .selector("edge.undeclared").style({ "line-color": stuck, "target-arrow-color": stuck, color: stuck, "line-style": "solid", width: 3 })
      .update();
  }
}

for (const root of document.querySelectorAll("[data-service-map]")) {
  const toggle = root.querySelector("[data-contracts-overlay]");
  if (toggle && root.serviceMap) new ContractsOverlay(root, toggle);
}

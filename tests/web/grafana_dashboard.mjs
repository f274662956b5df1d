// docs/grafana-dashboard.json from the panels of xmppd/listeners/dashboard.html (one list of
// queries for both): node tests/web/grafana_dashboard.mjs xmppd/listeners/dashboard.html
// docs/grafana-dashboard.json. tests/integration/test_dashboard.py fails if the two differ.
import { readFileSync, writeFileSync } from "node:fs";
const html = readFileSync(process.argv[2], "utf8");
const start = html.indexOf("const PANELS = [");
const end = html.indexOf("];", start);
const PANELS = eval(html.slice(start + "const PANELS = ".length, end + 1));
const ds = { type: "prometheus", uid: "${DS_PROMETHEUS}" };
const panels = PANELS.map((p, i) => ({
  id: i + 1,
  type: "timeseries",
  title: p.title,
  datasource: ds,
  gridPos: { h: 8, w: 6, x: (i % 4) * 6, y: Math.floor(i / 4) * 8 },
  fieldConfig: { defaults: { unit: p.unit, custom: { lineWidth: 1, fillOpacity: 0 } }, overrides: [] },
  options: { legend: { displayMode: "list", placement: "bottom", showLegend: true, calcs: ["lastNotNull"] },
             tooltip: { mode: "multi", sort: "none" } },
  targets: p.targets.map((t, j) => ({ refId: String.fromCharCode(65 + j), datasource: ds,
                                       expr: t.expr, legendFormat: t.legend, range: true })),
}));
const dashboard = {
  __inputs: [{ name: "DS_PROMETHEUS", label: "Prometheus", description: "the Prometheus that scrapes xmppd's metrics listener",
               type: "datasource", pluginId: "prometheus", pluginName: "Prometheus" }],
  __requires: [{ type: "grafana", id: "grafana", name: "Grafana", version: "10.0.0" },
               { type: "datasource", id: "prometheus", name: "Prometheus", version: "1.0.0" },
               { type: "panel", id: "timeseries", name: "Time series", version: "" }],
  title: "xmppd",
  description: "xmppd's metrics listener (type = \"metrics\"): the same panels and queries as its built-in page at / (xmppd/listeners/dashboard.html). docs/OPERATIONS.md lists the metrics.",
  uid: "xmppd-overview",
  tags: ["xmpp", "xmppd"],
  editable: true,
  graphTooltip: 1,
  refresh: "10s",
  schemaVersion: 39,
  version: 1,
  time: { from: "now-1h", to: "now" },
  timepicker: {},
  templating: { list: [] },
  annotations: { list: [] },
  links: [],
  panels,
};
writeFileSync(process.argv[3], JSON.stringify(dashboard, null, 2) + "\n");

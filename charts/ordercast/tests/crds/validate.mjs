// Validates the chart's custom resources against their CRDs' schemas
// (Gateway API, prometheus-operator) as kubernetes-models publishes them:
// types, required fields, enums, patterns and bounds. (Its validators are
// compiled from the CRDs, which allow unknown fields; the Python tests
// check the fields the chart sets by name.) Reads a JSON array of
// manifests on stdin; prints one line per problem and exits 1 if any.

const models = {
  "gateway.networking.k8s.io/v1 HTTPRoute": ["@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute", "HTTPRoute"],
  "monitoring.coreos.com/v1 ServiceMonitor": ["@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor", "ServiceMonitor"],
  "monitoring.coreos.com/v1 PrometheusRule": ["@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule", "PrometheusRule"],
};

const text = await new Promise((done) => {
  let all = "";
  process.stdin.on("data", (chunk) => (all += chunk)).on("end", () => done(all));
});
const problems = [];
for (const manifest of JSON.parse(text)) {
  const name = `${manifest.kind}/${manifest.metadata?.name}`;
  const model = models[`${manifest.apiVersion} ${manifest.kind}`];
  if (!model) {
    problems.push(`${name}: no schema for ${manifest.apiVersion} ${manifest.kind}`);
    continue;
  }
  const Model = (await import(model[0]))[model[1]];
  try {
    new Model(manifest).validate();
  } catch (e) {
    problems.push(`${name}: ${e.message}`);
  }
}
problems.forEach((p) => console.log(p));
process.exit(problems.length ? 1 : 0);

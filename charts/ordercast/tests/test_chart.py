"""Tests of the Helm chart: what it renders, and that the real binary runs
with the configuration it renders.

Run by scripts/chart.sh (`make chart`, and `make test`), which provides:
  HELM           the helm binary
  PROMTOOL       Prometheus's promtool (Debian's `prometheus` package)
  BUSYBOX        a static busybox (Debian's `busybox-static`), which runs
                 the `helm test` Pod's script as that Pod does
  ORDERCAST_BIN  the ordercast binary
  ORDERCAST_TEST_DATABASE_URL, ORDERCAST_TEST_REDIS_URL  servers to run it on
"""

import atexit
import contextlib
import json
import math
import os
import re
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

import kubernetes_validate
import yaml

CHART = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELM = os.environ.get("HELM", "helm")
PROMTOOL = os.environ.get("PROMTOOL", "promtool")
BUSYBOX = os.environ.get("BUSYBOX", "busybox")
SERVICES = os.path.join(os.path.dirname(os.path.dirname(CHART)), "services")
DASHBOARD = os.path.join(CHART, "dashboards", "ordercast.json")
# Metrics the binary exports without naming them in services/: the
# prometheus crate's process collector.
AGREED_METRICS = {
    "process_resident_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_cpu_seconds_total",
}
DOCS = os.path.join(os.path.dirname(os.path.dirname(CHART)), "docs")
BIN = os.environ.get("ORDERCAST_BIN", "target/debug/ordercast")
SECRET = "chart-test-secret-0123456789-0123456789"
REQUIRED = {
    "database.url": "postgres://ordercast@db:5432/ordercast",
    "redis.url": "redis://redis:6379",
    "jwt.secret": SECRET,
}


def helm(*args, values=None, files=()):
    """Runs helm on the chart with values `files` (-f), then `values`
    (--set); returns (exit code, stdout + stderr)."""
    sets = [f"--values={f}" for f in files]
    for key, value in (REQUIRED if values is None else values).items():
        sets += ["--set-string" if isinstance(value, str) else "--set", f"{key}={value}"]
    run = subprocess.run([HELM, *args, CHART, *sets], capture_output=True, text=True)
    return run.returncode, run.stdout + run.stderr


def manifests(out):
    docs = [d for d in yaml.safe_load_all(out) if d]
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in docs}


def validate_custom(manifests):
    """Runs crds/validate.mjs (the CRDs' schemas, from kubernetes-models) on
    custom resources: (exit code, output)."""
    result = subprocess.run(
        ["node", os.path.join(os.path.dirname(__file__), "crds", "validate.mjs")],
        input=json.dumps(manifests),
        capture_output=True,
        text=True,
    )
    return result.returncode, result.stdout + result.stderr


def render(files=(), **overrides):
    """The manifests for `files`, the required values and `overrides`, by kind/name."""
    code, out = helm("template", "oc", values={**REQUIRED, **overrides}, files=files)
    assert code == 0, out
    return manifests(out)


def values_file(values):
    """A values file (deleted at exit) holding `values`; for lists of maps,
    which --set spells badly."""
    f = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    with f:
        yaml.safe_dump(values, f)
    atexit.register(os.unlink, f.name)
    return f.name


PASSWORD = "replicator-pw-8c1f"
PEERS = [
    {
        "region": "us-east",
        "api": "http://ordercast-api.us-east.internal:8080",
        "database": f"postgres://replicator:{PASSWORD}@db.us-east.internal:5432/ordercast?sslmode=require&application_name=oc",
    },
    {
        "region": "ap-south",
        "api": "http://ordercast-api.ap-south.internal:8080",
        "database": f"postgres://replicator:{PASSWORD}@db.ap-south.internal:5432/ordercast",
    },
]


def regions(name="eu-west", peers=PEERS, **region):
    """A values file for region `name` with `peers` and other region.* values."""
    return values_file({"region": {"name": name, "peers": peers, **region}})


def peer(**fields):
    return {"region": "us-east", "api": "http://a:8080", "database": "postgres://r@db/oc", **fields}


EXAMPLES = os.path.join(CHART, "examples", "regions")


def container(manifests, role):
    spec = manifests[f"Deployment/oc-ordercast-{role}"]["spec"]["template"]["spec"]
    return spec, next(c for c in spec["containers"] if c["name"] == role)


def env_names(c):
    return [e["name"] for e in c["env"]]


def env_of(c):
    return {e["name"]: e for e in c["env"]}


def processes(m):
    """(what, container) of every process that runs ordercast: both roles,
    their migrate init containers, and the migrate Job if rendered."""
    for role in ("api", "edge"):
        spec, c = container(m, role)
        yield role, c
        for init in spec.get("initContainers", []):
            yield f"{role} init {init['name']}", init
    job = m.get("Job/oc-ordercast-migrate")
    if job:
        yield "migrate Job", job["spec"]["template"]["spec"]["containers"][0]


def alerts(m):
    return {r["alert"]: r for r in m["PrometheusRule/oc-ordercast"]["spec"]["groups"][0]["rules"]}


ALERTS = {
    "OrdercastUndeliveredOrders",
    "OrdercastPostgresUnavailable",
    "OrdercastRedisDegraded",
    "OrdercastOutboxBacklogGrowing",
    "OrdercastLiveDeliveryLatencyHigh",
    "OrdercastConnectionsNearCap",
    "OrdercastSlowConsumersDisconnected",
    "OrdercastRedisPublishFailing",
}
REGION_ALERTS = {
    "OrdercastRegionStale",
    "OrdercastReplicationBacklog",
    "OrdercastReplicationNotStreaming",
    "OrdercastForwardedWritesFailing",
}


def seconds(duration):
    """A duration as the binary reads it (humantime), for the units the
    chart takes: "1m30s" is 90."""
    parts = re.findall(r"([0-9]+)(ms|s|m|h)", duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(duration)
    factor = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(int(n) * factor[u] for n, u in parts)


class Renders(unittest.TestCase):
    def test_lint_is_clean(self):
        code, out = helm("lint", "--strict")
        self.assertEqual(code, 0, out)

    def test_lint_is_clean_with_every_optional_object(self):
        everything = values_file(
            {
                "ingress": {"enabled": True},
                "httpRoute": {"enabled": True, "parentRefs": [{"name": "public"}]},
                "serviceMonitor": {"enabled": True},
                "prometheusRule": {"enabled": True},
                "grafanaDashboard": {"enabled": True},
                "api": {"autoscaling": {"enabled": True}},
                "edge": {"autoscaling": {"enabled": True}},
                "admin": {"token": "an-admin-token-of-the-operators"},
                "tls": {"caSecret": "db-ca"},
            }
        )
        code, out = helm("lint", "--strict", files=[everything, regions()])
        self.assertEqual(code, 0, out)
        m = render(files=[everything, regions()])
        kinds = {name.split("/")[0] for name in m}
        self.assertLessEqual(
            {"Ingress", "HTTPRoute", "ServiceMonitor", "PrometheusRule", "ConfigMap", "HorizontalPodAutoscaler",
             "ServiceAccount", "Pod", "Job"},
            kinds,
        )
        # Every Kubernetes object against the API's schemas of the oldest
        # Kubernetes the chart takes (Chart.yaml's kubeVersion) and a
        # recent one, unknown fields refused; the CRDs' kinds have none there.
        crds = {"HTTPRoute", "ServiceMonitor", "PrometheusRule"}
        for version in ("1.30.0", "1.33.0"):
            validated = set()
            for name, manifest in m.items():
                if manifest["kind"] in crds:
                    continue
                try:
                    kubernetes_validate.validate(manifest, version, strict=True)
                except kubernetes_validate.ValidationError as e:
                    self.fail(f"{name} is not valid on Kubernetes {version}: {e}")
                validated.add(manifest["kind"])
            self.assertLessEqual(
                {"Deployment", "Service", "Ingress", "HorizontalPodAutoscaler", "ServiceAccount", "Pod", "Job"}, validated
            )
        # The custom resources against their CRDs' schemas.
        custom = [manifest for manifest in m.values() if manifest["kind"] in crds]
        self.assertEqual({c["kind"] for c in custom}, crds)
        code, out = validate_custom(custom)
        self.assertEqual(code, 0, out)

    def test_custom_resources_with_a_bad_value_or_a_missing_field_are_refused(self):
        m = render(**{"serviceMonitor.enabled": True, "prometheusRule.enabled": True})
        monitor = next(v for k, v in m.items() if k.startswith("ServiceMonitor/"))
        rule = next(v for k, v in m.items() if k.startswith("PrometheusRule/"))
        self.assertEqual(validate_custom([monitor, rule])[0], 0)
        bad = json.loads(json.dumps(rule))
        bad["spec"]["groups"][0]["rules"][0]["for"] = "5 minutes"
        code, out = validate_custom([bad])
        self.assertNotEqual(code, 0)
        self.assertIn("must match pattern", out)
        missing = json.loads(json.dumps(monitor))
        del missing["spec"]["selector"]
        code, out = validate_custom([missing])
        self.assertNotEqual(code, 0)
        self.assertIn("selector", out)

    def test_missing_or_weak_settings_are_refused_with_a_reason(self):
        for missing, reason in (
            ("database.url", "database.url is required"),
            ("redis.url", "redis.url is required"),
            ("jwt.secret", "jwt.secret is required"),
        ):
            values = {k: v for k, v in REQUIRED.items() if k != missing}
            code, out = helm("template", "oc", values=values)
            self.assertNotEqual(code, 0, missing)
            self.assertIn(reason, out)
        code, out = helm("template", "oc", values={**REQUIRED, "jwt.secret": "short"})
        self.assertNotEqual(code, 0)
        self.assertIn("at least 32 bytes", out)
        code, out = helm("template", "oc", values={**REQUIRED, "shutdownGrace": "30"})
        self.assertNotEqual(code, 0)
        self.assertIn("a duration is", out)

    def test_each_role_runs_its_subcommand_with_probes_on_the_admin_port(self):
        m = render()
        for role in ("api", "edge"):
            spec, c = container(m, role)
            self.assertEqual(c["args"], [role])
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            self.assertEqual(ports, {"http": 8080, "admin": 9090})
            self.assertEqual(c["livenessProbe"]["httpGet"], {"path": "/healthz", "port": "admin"})
            self.assertEqual(c["readinessProbe"]["httpGet"], {"path": "/readyz", "port": "admin"})
            self.assertEqual(spec["initContainers"][0]["args"], ["migrate"])
            svc = m[f"Service/oc-ordercast-{role}"]["spec"]
            self.assertEqual(svc["selector"]["app.kubernetes.io/component"], role)
            self.assertEqual(m[f"Deployment/oc-ordercast-{role}"]["spec"]["replicas"], 2)
            self.assertIn(f"PodDisruptionBudget/oc-ordercast-{role}", m)

    def test_secrets_come_from_the_secret_and_never_from_plain_values(self):
        m = render()
        secret = m["Secret/oc-ordercast"]["stringData"]
        self.assertEqual(secret["jwt-secret"], SECRET)
        for role in ("api", "edge"):
            _, c = container(m, role)
            env = {e["name"]: e for e in c["env"]}
            for name in ("ORDERCAST_DATABASE_URL", "ORDERCAST_REDIS_URL", "ORDERCAST_JWT_SECRET"):
                self.assertEqual(env[name]["valueFrom"]["secretKeyRef"]["name"], "oc-ordercast")
            self.assertNotIn(SECRET, yaml.safe_dump(c))

    def test_the_admin_port_listens_for_the_probes_and_the_admin_token_comes_from_a_secret(self):
        m = render()
        self.assertNotIn("Secret/oc-ordercast-admin", m)
        for role in ("api", "edge"):
            env = env_of(container(m, role)[1])
            self.assertEqual(env["ORDERCAST_ADMIN_LISTEN"]["value"], "0.0.0.0:9090")
            self.assertEqual(env["ORDERCAST_MAX_CONNECTIONS_PER_ADDRESS"]["value"], "0")
            self.assertNotIn("ORDERCAST_ADMIN_TOKEN", env)
        token = "an-admin-token-of-the-operators"
        m = render(**{"admin.token": token})
        self.assertEqual(m["Secret/oc-ordercast-admin"]["stringData"]["admin-token"], token)
        for role in ("api", "edge"):
            _, c = container(m, role)
            ref = env_of(c)["ORDERCAST_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]
            self.assertEqual(ref, {"name": "oc-ordercast-admin", "key": "admin-token"})
            self.assertNotIn(token, yaml.safe_dump(c))
        m = render(**{"admin.existingTokenSecret.name": "ops", "admin.existingTokenSecret.key": "t"})
        self.assertNotIn("Secret/oc-ordercast-admin", m)
        ref = env_of(container(m, "api")[1])["ORDERCAST_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]
        self.assertEqual(ref, {"name": "ops", "key": "t"})
        code, out = helm("template", "oc", values={**REQUIRED, "admin.token": "short"})
        self.assertNotEqual(code, 0)
        self.assertIn("at least 16 characters", out)

    def test_an_existing_secret_replaces_the_chart_made_one(self):
        m = render(**{k: "" for k in REQUIRED}, existingSecret="prod-ordercast")
        self.assertNotIn("Secret/oc-ordercast", m)
        _, c = container(m, "edge")
        refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in c["env"] if "valueFrom" in e}
        self.assertEqual(refs, {"prod-ordercast"})

    def test_a_public_key_is_mounted_as_the_key_file(self):
        pem = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n"
        m = render(**{"jwt.kind": "publicKey", "jwt.secret": "", "jwt.publicKey": pem})
        self.assertEqual(m["Secret/oc-ordercast"]["stringData"]["jwt-public-key.pem"], pem)
        spec, c = container(m, "api")
        env = {e["name"]: e for e in c["env"]}
        self.assertNotIn("ORDERCAST_JWT_SECRET", env)
        path = env["ORDERCAST_JWT_PUBLIC_KEY_FILE"]["value"]
        mount = c["volumeMounts"][0]
        self.assertEqual(os.path.join(mount["mountPath"], "jwt-public-key.pem"), path)
        self.assertEqual(spec["volumes"][0]["secret"]["items"][0]["key"], "jwt-public-key.pem")

    def test_a_private_ca_is_mounted_and_trusted_for_postgres_and_redis(self):
        m = render(**{"tls.caSecret": "db-ca"})
        for role in ("api", "edge"):
            spec, c = container(m, role)
            for box in (c, spec["initContainers"][0]):
                env = {e["name"]: e.get("value") for e in box["env"]}
                mount = {v["name"]: v["mountPath"] for v in box["volumeMounts"]}["ca"]
                for name in ("ORDERCAST_DATABASE_CA_FILE", "ORDERCAST_REDIS_CA_FILE"):
                    self.assertEqual(env[name], os.path.join(mount, "ca.crt"))
            ca = {v["name"]: v for v in spec["volumes"]}["ca"]["secret"]
            self.assertEqual((ca["secretName"], ca["items"][0]["key"]), ("db-ca", "ca.crt"))
        _, c = container(render(**{"tls.caSecret": "db-ca", "tls.redis": False}), "edge")
        self.assertNotIn("ORDERCAST_REDIS_CA_FILE", env_names(c))
        _, c = container(render(), "api")
        self.assertNotIn("volumeMounts", c)

    def test_pods_outlive_the_drain(self):
        m = render(shutdownGrace="1m", preStopSleepSeconds=7)
        for role in ("api", "edge"):
            spec, c = container(m, role)
            self.assertEqual(c["lifecycle"]["preStop"]["sleep"]["seconds"], 7)
            grace = seconds({e["name"]: e.get("value") for e in c["env"]}["ORDERCAST_SHUTDOWN_GRACE"])
            self.assertGreater(spec["terminationGracePeriodSeconds"], grace + 7)
        _, c = container(render(preStopSleepSeconds=0), "edge")
        self.assertNotIn("lifecycle", c)

    def test_misspelt_or_mistyped_values_are_refused_by_the_schema(self):
        for key, value, reason in (
            ("edge.autoscalling.enabled", True, "autoscalling"),
            ("prometheusRules.enabled", True, "prometheusRules"),
            ("api.pdb.enable", True, "enable"),
            ("ingress.edgeAnotations.x", "y", "edgeAnotations"),
            ("edge.maxConnections", "lots", "maxConnections"),
            ("service.type", "Public", "service.type"),
        ):
            for command in (("template", "oc"), ("lint", "--strict")):
                code, out = helm(*command, values={**REQUIRED, key: value})
                self.assertNotEqual(code, 0, f"helm {command[0]} took {key}={value}")
                self.assertIn("values don't meet the specifications of the schema", out, key)
                self.assertIn(reason, out, key)

    def test_termination_grace_reads_durations_as_the_binary_does(self):
        for duration in ("45s", "1m30s", "90s", "2m", "1h", "1h2m3s", "1500ms", "500ms", "1m0s"):
            m = render(shutdownGrace=duration, preStopSleepSeconds=0, terminationGraceSlackSeconds=0)
            for role in ("api", "edge"):
                spec, c = container(m, role)
                self.assertEqual(env_of(c)["ORDERCAST_SHUTDOWN_GRACE"]["value"], duration)
                self.assertEqual(spec["terminationGracePeriodSeconds"], math.ceil(seconds(duration)), duration)
        for duration in ("30", "1m30", "1.5m", "-1s", "1d", "s", "1 m"):
            code, out = helm("template", "oc", values={**REQUIRED, "shutdownGrace": duration})
            self.assertNotEqual(code, 0, duration)
            self.assertIn("a duration is", out)

    def test_the_admin_port_is_on_cluster_ip_services_only(self):
        m = render(**{"service.type": "LoadBalancer", "serviceMonitor.enabled": True})
        edge_pods = m["Deployment/oc-ordercast-edge"]["spec"]["template"]["metadata"]["labels"]
        services = {k: d for k, d in m.items() if k.startswith("Service/")}
        for name, svc in services.items():
            ports = {p["name"]: p for p in svc["spec"]["ports"]}
            if svc["spec"].get("type") == "LoadBalancer":
                self.assertNotIn("admin", ports, name)
                self.assertNotIn(9090, [p["port"] for p in ports.values()], name)
        for role in ("api", "edge"):
            self.assertEqual(services[f"Service/oc-ordercast-{role}"]["spec"]["type"], "LoadBalancer")
            admin = services[f"Service/oc-ordercast-{role}-admin"]
            self.assertEqual(admin["spec"]["type"], "ClusterIP")
            self.assertEqual(admin["spec"]["ports"], [{"name": "admin", "port": 9090, "targetPort": "admin", "protocol": "TCP"}])
            self.assertEqual(admin["spec"]["selector"]["app.kubernetes.io/component"], role)
        self.assertLessEqual(services["Service/oc-ordercast-edge-admin"]["spec"]["selector"].items(), edge_pods.items())
        # The ServiceMonitor selects the admin Services and nothing else.
        wanted = m["ServiceMonitor/oc-ordercast"]["spec"]["selector"]["matchLabels"].items()
        selected = {name for name, svc in services.items() if wanted <= svc["metadata"]["labels"].items()}
        self.assertEqual(selected, {"Service/oc-ordercast-api-admin", "Service/oc-ordercast-edge-admin"})

    def test_pods_run_as_an_account_of_their_own_without_a_token(self):
        m = render(files=[regions()])
        account = m["ServiceAccount/oc-ordercast"]
        self.assertIs(account["automountServiceAccountToken"], False)
        pods = [container(m, role)[0] for role in ("api", "edge")]
        pods.append(m["Job/oc-ordercast-migrate"]["spec"]["template"]["spec"])
        for pod in pods:
            self.assertEqual(pod["serviceAccountName"], "oc-ordercast")
            self.assertIs(pod["automountServiceAccountToken"], False)
        m = render(**{"serviceAccount.create": False, "serviceAccount.name": "ops"})
        self.assertNotIn("ServiceAccount", {k.split("/")[0] for k in m})
        spec, _ = container(m, "edge")
        self.assertEqual((spec["serviceAccountName"], spec["automountServiceAccountToken"]), ("ops", False))

    def test_pods_spread_over_zones_and_nodes_by_default(self):
        m = render()
        for role in ("api", "edge"):
            spec, _ = container(m, role)
            pods = m[f"Deployment/oc-ordercast-{role}"]["spec"]["template"]["metadata"]["labels"]
            spread = {c["topologyKey"]: c for c in spec["topologySpreadConstraints"]}
            self.assertEqual(set(spread), {"topology.kubernetes.io/zone", "kubernetes.io/hostname"})
            for c in spread.values():
                self.assertEqual((c["maxSkew"], c["whenUnsatisfiable"]), (1, "ScheduleAnyway"))
                self.assertEqual(c["labelSelector"]["matchLabels"]["app.kubernetes.io/component"], role)
                self.assertLessEqual(c["labelSelector"]["matchLabels"].items(), pods.items())
        mine = [{"maxSkew": 2, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule"}]
        m = render(files=[values_file({"edge": {"topologySpreadConstraints": mine}, "api": {"topologySpreadConstraints": []}})])
        self.assertEqual(container(m, "edge")[0]["topologySpreadConstraints"], mine)
        self.assertNotIn("topologySpreadConstraints", container(m, "api")[0])

    def test_the_edge_runs_websocket_commands_on_the_api_service(self):
        m = render()
        _, edge = container(m, "edge")
        url = env_of(edge)["ORDERCAST_API_URL"]["value"]
        port = m["Service/oc-ordercast-api"]["spec"]["ports"][0]["port"]
        self.assertEqual(url, f"http://oc-ordercast-api:{port}")
        _, api = container(m, "api")
        self.assertNotIn("ORDERCAST_API_URL", env_of(api))

    def test_both_roles_read_the_retention_and_the_cors_origins(self):
        """An edge refuses a time cursor from before the retention, so it
        must read the api's; cross-origin pages call the api and stream
        from the edge, so both must list their origins."""
        m = render(retentionDays=30)
        for role in ("api", "edge"):
            env = env_of(container(m, role)[1])
            self.assertEqual(env["ORDERCAST_RETENTION_DAYS"]["value"], "30", role)
            self.assertNotIn("ORDERCAST_CORS_ORIGINS", env, f"{role}: no origin by default")
        origins = values_file({"corsOrigins": ["https://kds.example.com", "http://10.0.0.5:8000"]})
        m = render(files=[origins])
        for role in ("api", "edge"):
            env = env_of(container(m, role)[1])
            self.assertEqual(
                env["ORDERCAST_CORS_ORIGINS"]["value"], "https://kds.example.com,http://10.0.0.5:8000", role
            )
        bad = values_file({"corsOrigins": ["https://kds.example.com/app"]})
        code, out = helm("template", "oc", values=REQUIRED, files=[bad])
        self.assertNotEqual(code, 0, "a path is not an origin")
        self.assertIn("corsOrigins", out)

    def test_a_roles_env_overrides_the_global_env_by_name(self):
        m = render(**{"env.RUST_LOG": "info", "env.OTEL_SERVICE_NAME": "oc", "edge.env.RUST_LOG": "debug"})
        for what, c in processes(m):
            names = env_names(c)
            self.assertEqual(len(names), len(set(names)), f"{what}: a variable set twice: {names}")
        expected = {"api": "info", "edge": "debug", "api init migrate": "info", "edge init migrate": "info"}
        for what, c in processes(m):
            self.assertEqual(env_of(c)["RUST_LOG"]["value"], expected[what], what)
            self.assertEqual(env_of(c)["OTEL_SERVICE_NAME"]["value"], "oc", what)

    def test_websockets_are_spread_over_the_edges_and_streams_hashed_apart(self):
        """Every WebSocket opens /v1/ws: a hash of the path would send them
        all to one edge. ingress-nginx balances per Service and port (one
        upstream each), so the Ingress of /v1/ws must neither hash nor share
        its Service with an Ingress that does."""
        m = render(**{"ingress.enabled": True, "ingress.host": "oc.example.com"})
        ingresses = [d for k, d in m.items() if k.startswith("Ingress/")]
        routes = {}  # path -> (service, annotations of its Ingress)
        for ing in ingresses:
            self.assertEqual(ing["spec"]["rules"][0]["host"], "oc.example.com")
            for p in ing["spec"]["rules"][0]["http"]["paths"]:
                routes[p["path"]] = (p["backend"]["service"]["name"], ing["metadata"].get("annotations", {}))
        hashing = lambda annotations: {k: v for k, v in annotations.items() if "hash" in k}
        hashed_services = {svc for svc, annotations in routes.values() if hashing(annotations)}
        ws, ws_annotations = routes["/v1/ws"]
        self.assertEqual(hashing(ws_annotations), {}, "the WebSocket Ingress hashes")
        self.assertNotIn(ws, hashed_services, "/v1/ws shares its Service (upstream) with a hashed Ingress")
        stream, stream_annotations = routes["/v1/restaurants/[^/]+/(stream|events)$"]
        self.assertEqual(hashing(stream_annotations), {"nginx.ingress.kubernetes.io/upstream-hash-by": "$uri"})
        self.assertEqual(stream_annotations["nginx.ingress.kubernetes.io/proxy-buffering"], "off")
        self.assertEqual(ws_annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"], "3600")
        edge_pods = m["Deployment/oc-ordercast-edge"]["spec"]["template"]["metadata"]["labels"]
        for path, service in (("/v1/ws", ws), ("stream", stream), ("/client/", routes["/client/"][0])):
            selector = m[f"Service/{service}"]["spec"]["selector"]
            self.assertLessEqual(selector.items(), edge_pods.items(), path)
            self.assertEqual(selector["app.kubernetes.io/component"], "edge", path)
        self.assertEqual(routes["/"][0], "oc-ordercast-api")
        self.assertEqual(hashing(routes["/"][1]), {})
        self.assertFalse([k for k in render() if k.startswith("Ingress/") or k.endswith("-edge-streams")])

    def test_a_gateway_api_route_sends_the_streams_to_the_edges_without_hashing(self):
        self.assertFalse([k for k in render() if k.startswith("HTTPRoute/")])
        code, out = helm("template", "oc", values={**REQUIRED, "httpRoute.enabled": True})
        self.assertNotEqual(code, 0)
        self.assertIn("httpRoute.parentRefs is required", out)
        gateway = values_file({"httpRoute": {"enabled": True, "parentRefs": [{"name": "public", "namespace": "gw"}]}})
        m = render(files=[gateway])
        route = m["HTTPRoute/oc-ordercast"]
        self.assertEqual(route["apiVersion"], "gateway.networking.k8s.io/v1")
        self.assertEqual(route["spec"]["parentRefs"], [{"name": "public", "namespace": "gw"}])
        self.assertEqual(route["spec"]["hostnames"], ["ordercast.example.com"])
        by_path = {}
        for rule in route["spec"]["rules"]:
            self.assertNotIn("sessionPersistence", rule)
            (backend,) = rule["backendRefs"]
            service = m[f"Service/{backend['name']}"]
            self.assertIn(backend["port"], [p["port"] for p in service["spec"]["ports"]])
            for match in rule["matches"]:
                by_path[match["path"]["value"]] = (backend["name"], rule)
        self.assertEqual(by_path["/v1/ws"][0], "oc-ordercast-edge")
        self.assertEqual(by_path["^/v1/restaurants/[^/]+/(stream|events)$"][0], "oc-ordercast-edge")
        self.assertEqual(by_path["/v1/ws"][1]["timeouts"], {"request": "0s"})
        self.assertEqual(by_path["/"][0], "oc-ordercast-api")
        self.assertNotIn("timeouts", by_path["/"][1])
        code, out = helm("lint", "--strict", values=REQUIRED, files=[gateway])
        self.assertEqual(code, 0, out)

    def test_autoscaling_leaves_replicas_to_the_autoscaler(self):
        m = render(**{"edge.autoscaling.enabled": True})
        self.assertNotIn("replicas", m["Deployment/oc-ordercast-edge"]["spec"])
        self.assertEqual(m["HorizontalPodAutoscaler/oc-ordercast-edge"]["spec"]["maxReplicas"], 10)
        self.assertNotIn("HorizontalPodAutoscaler/oc-ordercast-api", m)

    def test_edges_scale_on_connections_per_pod_and_down_slowly(self):
        m = render(**{"edge.autoscaling.enabled": True, "api.autoscaling.enabled": True})
        edge = m["HorizontalPodAutoscaler/oc-ordercast-edge"]["spec"]
        metrics = {x["type"]: x for x in edge["metrics"]}
        self.assertEqual(metrics["Pods"]["pods"]["metric"], {"name": "ordercast_connections"})
        self.assertEqual(metrics["Pods"]["pods"]["target"], {"type": "AverageValue", "averageValue": "10000"})
        self.assertEqual(metrics["Resource"]["resource"]["name"], "cpu")
        down = edge["behavior"]["scaleDown"]
        self.assertGreaterEqual(down["stabilizationWindowSeconds"], 300)
        self.assertEqual(down["policies"], [{"type": "Pods", "value": 1, "periodSeconds": 300}])
        api = m["HorizontalPodAutoscaler/oc-ordercast-api"]["spec"]
        self.assertEqual([x["type"] for x in api["metrics"]], ["Resource"])
        self.assertEqual(api["metrics"][0]["resource"]["target"], {"type": "Utilization", "averageUtilization": 70})
        self.assertNotIn("behavior", api)
        # Connections alone.
        m = render(files=[values_file({"edge": {"autoscaling": {"enabled": True, "targetCPUUtilizationPercentage": None,
                                                                  "targetConnectionsPerPod": 5000}}})])
        metrics = m["HorizontalPodAutoscaler/oc-ordercast-edge"]["spec"]["metrics"]
        self.assertEqual([(x["type"], x["pods"]["target"]["averageValue"]) for x in metrics], [("Pods", "5000")])
        code, out = helm("template", "oc", values={**REQUIRED, "api.autoscaling.enabled": True,
                                                   "api.autoscaling.targetCPUUtilizationPercentage": 0})
        self.assertNotEqual(code, 0)
        self.assertIn("api.autoscaling is enabled without a target", out)

    def test_the_alerts_watch_undelivered_events_postgres_and_redis(self):
        self.assertNotIn("PrometheusRule/oc-ordercast", render())
        m = render(**{"prometheusRule.enabled": True, "api.undeliveredAfter": "45s"})
        rules = {r["alert"]: r for r in m["PrometheusRule/oc-ordercast"]["spec"]["groups"][0]["rules"]}
        self.assertEqual(set(rules), ALERTS)
        self.assertIn('kind="unavailable"', rules["OrdercastPostgresUnavailable"]["expr"])
        self.assertIn("ordercast_degraded_shards", rules["OrdercastRedisDegraded"]["expr"])
        rule = rules["OrdercastUndeliveredOrders"]
        self.assertIn("max by (namespace, job) (ordercast_undelivered_events", rule["expr"])
        self.assertIn("{{ $value }}", rule["annotations"]["description"])
        _, c = container(m, "api")
        self.assertEqual({e["name"]: e.get("value") for e in c["env"]}["ORDERCAST_UNDELIVERED_AFTER"], "45s")

    def test_every_process_gets_its_region_and_the_durations_only_when_set(self):
        for what, c in processes(render()):
            env = env_of(c)
            self.assertEqual(env["ORDERCAST_REGION"]["value"], "local", what)
            for name in ("ORDERCAST_PEERS", "ORDERCAST_FORWARD_TIMEOUT", "ORDERCAST_REGION_STALE_AFTER"):
                self.assertNotIn(name, env, what)
        m = render(files=[regions(forwardTimeout="8s", staleAfter="5s")])
        seen = set()
        for what, c in processes(m):
            seen.add(what)
            env = {e["name"]: e.get("value") for e in c["env"]}
            self.assertEqual(env["ORDERCAST_REGION"], "eu-west", what)
            self.assertEqual(env["ORDERCAST_FORWARD_TIMEOUT"], "8s", what)
            self.assertEqual(env["ORDERCAST_REGION_STALE_AFTER"], "5s", what)
        self.assertEqual(seen, {"api", "edge", "api init migrate", "edge init migrate", "migrate Job"})

    def test_peers_come_from_a_secret_and_never_from_plain_values(self):
        m = render(files=[regions()])
        stored = json.loads(m["Secret/oc-ordercast-peers"]["stringData"]["peers.json"])
        self.assertEqual(stored, PEERS)
        for what, c in processes(m):
            ref = env_of(c)["ORDERCAST_PEERS"]["valueFrom"]["secretKeyRef"]
            self.assertEqual(ref, {"name": "oc-ordercast-peers", "key": "peers.json"}, what)
        for name, manifest in m.items():
            if not name.startswith("Secret/"):
                self.assertNotIn(PASSWORD, yaml.safe_dump(manifest), name)
        self.assertNotIn("ConfigMap", {name.split("/")[0] for name in m})
        # Each process reads the peers at start: the pods roll when they change.
        other = render(files=[regions(peers=PEERS[:1])])
        for role in ("api", "edge"):
            annotations = lambda m: m[f"Deployment/oc-ordercast-{role}"]["spec"]["template"]["metadata"]["annotations"]
            self.assertNotEqual(annotations(m)["checksum/peers"], annotations(other)["checksum/peers"])
        self.assertNotIn("Secret/oc-ordercast-peers", render())

    def test_an_existing_peers_secret_is_referenced_and_none_is_made(self):
        m = render(**{"region.name": "eu-west", "region.existingPeersSecret.name": "eu-west-peers"})
        self.assertNotIn("Secret/oc-ordercast-peers", m)
        for what, c in processes(m):
            ref = env_of(c)["ORDERCAST_PEERS"]["valueFrom"]["secretKeyRef"]
            self.assertEqual(ref, {"name": "eu-west-peers", "key": "peers.json"}, what)
        self.assertIn("Job/oc-ordercast-migrate", m)
        m = render(**{"region.existingPeersSecret.name": "p", "region.existingPeersSecret.key": "list"})
        _, c = container(m, "edge")
        self.assertEqual(env_of(c)["ORDERCAST_PEERS"]["valueFrom"]["secretKeyRef"]["key"], "list")

    def test_region_settings_a_process_would_refuse_fail_with_a_reason(self):
        def refused(reason, files=(), **overrides):
            code, out = helm("template", "oc", values={**REQUIRED, **overrides}, files=files)
            self.assertNotEqual(code, 0, f"{files} {overrides} rendered")
            self.assertIn(reason, out)

        for name in ("EU", "1eu", "eu_west", "e" * 33, ""):
            refused("is not a valid region name", **{"region.name": name})
        refused("""region.peers[0] is "us-east", this release's own region""", files=[regions(name="us-east")])
        refused('region.peers lists "us-east" twice', files=[regions(peers=[peer(), peer(api="http://b:8080")])])
        refused("(us-east) has no api", files=[regions(peers=[peer(api=None)])])
        refused("api must be an http:// URL", files=[regions(peers=[peer(api="https://a")])])
        refused('"US" is not a valid region name', files=[regions(peers=[peer(region="US")])])
        refused("(us-east) has no database", files=[regions(peers=[peer(database=None)])])
        refused('unknown key "databse"', files=[regions(peers=[peer(databse="postgres://r@db/oc")])])
        refused("not both", files=[regions()], **{"region.existingPeersSecret.name": "peers"})
        refused("ORDERCAST_PEERS is set in env", **{"edge.env.ORDERCAST_PEERS": "[]"})
        refused("ORDERCAST_REGION is set in env", **{"env.ORDERCAST_REGION": "eu-west"})
        # Without the chart's migrations, the processes need no database URL.
        m = render(files=[regions(peers=[peer(database=None)])], **{"migrate.enabled": False})
        self.assertNotIn("database", json.loads(m["Secret/oc-ordercast-peers"]["stringData"]["peers.json"])[0])
        self.assertNotIn("Job/oc-ordercast-migrate", m)

    def test_the_region_alerts_appear_only_with_peers(self):
        self.assertEqual(set(alerts(render(**{"prometheusRule.enabled": True}))), ALERTS)
        rules = alerts(render(files=[regions()], **{"prometheusRule.enabled": True}))
        self.assertLessEqual(REGION_ALERTS, set(rules))
        ns = 'namespace="default"'
        self.assertEqual(rules["OrdercastRegionStale"]["expr"], f"max by (namespace, job, region) (ordercast_region_stale{{{ns}}}) == 1")
        self.assertEqual(rules["OrdercastRegionStale"]["for"], "2m")
        self.assertEqual(
            rules["OrdercastReplicationBacklog"]["expr"],
            f"max by (namespace, job, region) (ordercast_replication_backlog_bytes{{{ns}}}) > 1073741824",
        )
        self.assertEqual(rules["OrdercastReplicationBacklog"]["for"], "10m")
        self.assertEqual(
            rules["OrdercastReplicationNotStreaming"]["expr"],
            f"max by (namespace, job, region) (ordercast_replication_streaming{{{ns}}}) == 0",
        )
        self.assertEqual(rules["OrdercastReplicationNotStreaming"]["for"], "5m")
        failing = rules["OrdercastForwardedWritesFailing"]
        self.assertIn("rate(ordercast_forwarded_writes_total{", failing["expr"])
        self.assertIn('outcome="unavailable"', failing["expr"])
        self.assertTrue(failing["expr"].endswith(" > 0"), failing["expr"])
        self.assertEqual(failing["for"], "5m")
        for name in REGION_ALERTS:
            self.assertIn("{{ $labels.region }}", rules[name]["annotations"]["summary"], name)
            self.assertIn(rules[name]["labels"]["severity"], ("warning", "critical"), name)
            self.assertTrue(rules[name]["annotations"]["description"], name)
        rules = alerts(
            render(
                **{
                    "prometheusRule.enabled": True,
                    "region.existingPeersSecret.name": "peers",
                    "prometheusRule.replicationBacklogBytes": 536870912,
                }
            )
        )
        self.assertLessEqual(REGION_ALERTS, set(rules))
        self.assertTrue(rules["OrdercastReplicationBacklog"]["expr"].endswith(" > 536870912"))

    def test_every_alert_passes_promtool_and_its_unit_test(self):
        """promtool check rules on the rendered groups (expressions and
        annotation templates), then tests/alerts.test.yaml with promtool
        test rules: each alert fires on its condition with namespace, job
        and its own labels kept, and not without it."""
        rules = alerts(render(files=[regions()], **{"prometheusRule.enabled": True}))
        self.assertEqual(set(rules), ALERTS | REGION_ALERTS)
        with open(os.path.join(CHART, "tests", "alerts.test.yaml")) as f:
            tests = yaml.safe_load(f)
        tested = {t["alertname"] for case in tests["tests"] for t in case["alert_rule_test"] if t["exp_alerts"]}
        self.assertEqual(tested, set(rules), "every alert has a unit test in which it fires")
        with tempfile.TemporaryDirectory() as tmp:
            full = os.path.join(tmp, "full.yml")
            with open(full, "w") as f:
                yaml.safe_dump({"groups": [{"name": "ordercast", "rules": list(rules.values())}]}, f)
            run = subprocess.run([PROMTOOL, "check", "rules", full], capture_output=True, text=True)
            self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
            # The unit tests compare runbook_url only (alerts.test.yaml).
            short = [{**r, "annotations": {"runbook_url": r["annotations"]["runbook_url"]}} for r in rules.values()]
            with open(os.path.join(tmp, "rules.yml"), "w") as f:
                yaml.safe_dump({"groups": [{"name": "ordercast", "rules": short}]}, f)
            with open(os.path.join(tmp, "alerts.test.yaml"), "w") as f:
                yaml.safe_dump(tests, f)
            run = subprocess.run(
                [PROMTOOL, "test", "rules", "alerts.test.yaml"], cwd=tmp, capture_output=True, text=True
            )
            self.assertEqual(run.returncode, 0, run.stdout + run.stderr)

    def test_every_alert_has_a_runbook_in_the_operations_guide(self):
        with open(os.path.join(DOCS, "operations.md")) as f:
            headings = {line[4:].strip() for line in f if line.startswith("### ")}
        rules = alerts(render(files=[regions()], **{"prometheusRule.enabled": True}))
        for name, rule in rules.items():
            self.assertEqual(rule["annotations"]["runbook_url"], f"docs/operations.md#{name.lower()}")
            self.assertIn(name, headings, f"docs/operations.md has no ### {name}")
            self.assertTrue(rule["annotations"]["summary"] and rule["annotations"]["description"], name)
            self.assertIn("namespace, job", rule["expr"], f"{name} aggregates namespace or job away")
        base = "https://git.example.com/oc/blob/main/docs/operations.md"
        rules = alerts(render(**{"prometheusRule.enabled": True, "prometheusRule.runbookBaseUrl": base}))
        self.assertEqual(rules["OrdercastRedisDegraded"]["annotations"]["runbook_url"], f"{base}#ordercastredisdegraded")

    def test_the_dashboard_queries_metrics_the_binary_exports(self):
        """dashboards/ordercast.json parses, every panel has a query that
        promtool parses, every metric it names is one the Rust sources
        name (or an agreed one), and the panels an SRE opens first are
        there."""
        with open(DASHBOARD) as f:
            dashboard = json.load(f)
        exported = set(AGREED_METRICS)
        for root, _, files in os.walk(SERVICES):
            for name in files:
                if name.endswith(".rs"):
                    with open(os.path.join(root, name)) as f:
                        exported |= set(re.findall(r'"((?:ordercast|process)_[a-z0-9_]+)"', f.read()))
        panels = [p for p in dashboard["panels"] if p["type"] != "row"]
        self.assertGreaterEqual(len(panels), 12)
        exprs, named = [], set()
        for panel in panels:
            targets = [t for t in panel.get("targets", []) if t.get("expr", "").strip()]
            self.assertTrue(targets, f"panel {panel['title']!r} has no query")
            self.assertEqual(panel["datasource"]["uid"], "${datasource}", panel["title"])
            for t in targets:
                exprs.append(t["expr"])
                self.assertIn('namespace=~"$namespace"', t["expr"], panel["title"])
                for metric in re.findall(r"\b((?:ordercast|process)_[a-z0-9_]+)\b", t["expr"]):
                    base = re.sub(r"_(bucket|count|sum)$", "", metric)
                    self.assertTrue(
                        metric in exported or base in exported, f"{panel['title']!r}: {metric} is not exported"
                    )
                    named.add(base)
        for wanted in (
            "ordercast_deliveries_total",
            "ordercast_delivery_latency_seconds",
            "ordercast_connections",
            "ordercast_max_connections",
            "ordercast_outbox_backlog",
            "ordercast_outbox_republished_total",
            "ordercast_undelivered_events",
            "ordercast_degraded_shards",
            "ordercast_slow_consumer_actions_total",
            "ordercast_rate_limited_total",
            "ordercast_postgres_errors_total",
            "ordercast_redis_errors_total",
            "ordercast_http_request_duration_seconds",
            "process_resident_memory_bytes",
            "process_open_fds",
            "ordercast_connections_refused_total",
            "ordercast_streams_refused_total",
        ):
            self.assertIn(wanted, named, f"no panel shows {wanted}")
        latency = [e for e in exprs if "ordercast_delivery_latency_seconds" in e]
        self.assertTrue(latency and all('kind="live"' in e for e in latency), latency)
        # The queries parse (Grafana's variables as Prometheus would get them).
        rules = [
            {"record": f"dashboard:query:{i}", "expr": e.replace("$__rate_interval", "5m").replace("$namespace", ".*")}
            for i, e in enumerate(exprs)
        ]
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "dashboard.yml")
            with open(path, "w") as f:
                yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
            run = subprocess.run([PROMTOOL, "check", "rules", path], capture_output=True, text=True)
            self.assertEqual(run.returncode, 0, run.stdout + run.stderr)

    def test_the_dashboard_configmap_carries_the_file_for_grafanas_sidecar(self):
        self.assertNotIn("ConfigMap/oc-ordercast-dashboard", render())
        m = render(**{"grafanaDashboard.enabled": True, "grafanaDashboard.annotations.grafana_folder": "Ordercast"})
        cm = m["ConfigMap/oc-ordercast-dashboard"]
        self.assertEqual(cm["metadata"]["labels"]["grafana_dashboard"], "1")
        self.assertEqual(cm["metadata"]["annotations"], {"grafana_folder": "Ordercast"})
        with open(DASHBOARD) as f:
            self.assertEqual(json.loads(cm["data"]["ordercast.json"]), json.load(f))
        code, out = helm("lint", "--strict", values={**REQUIRED, "grafanaDashboard.enabled": True})
        self.assertEqual(code, 0, out)

    def test_helm_test_pod_mints_tokens_with_the_charts_image(self):
        m = render(**{"jwt.issuer": "https://auth.example.com"})
        pod = m["Pod/oc-ordercast-test-stream"]
        self.assertEqual(pod["metadata"]["annotations"]["helm.sh/hook"], "test")
        spec = pod["spec"]
        self.assertEqual(spec["restartPolicy"], "Never")
        self.assertIs(spec["automountServiceAccountToken"], False)
        (tools,) = spec["initContainers"]
        self.assertEqual(tools["image"], "busybox:1.36.1-musl")
        (test,) = spec["containers"]
        _, api = container(m, "api")
        self.assertEqual(test["image"], api["image"], "tokens come from the chart's own image")
        script = test["args"][0]
        for needed in ("ordercast token --role admin", "http://oc-ordercast-api:8080/v1/restaurants",
                       "http://oc-ordercast-edge:8080/v1/restaurants/$rid/stream", "event: order.created"):
            self.assertIn(needed.replace("http://oc-ordercast-api:8080", "$api").replace("http://oc-ordercast-edge:8080", "$edge"), script)
        env = env_of(test)
        self.assertEqual(env["ORDERCAST_JWT_SECRET"]["valueFrom"]["secretKeyRef"], {"name": "oc-ordercast", "key": "jwt-secret"})
        self.assertEqual(env["ORDERCAST_JWT_ISSUER"]["value"], "https://auth.example.com")
        self.assertNotIn(SECRET, yaml.safe_dump(pod))
        self.assertNotIn("Pod/oc-ordercast-test-stream", render(**{"helmTest.enabled": False}))
        pem = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n"
        self.assertNotIn(
            "Pod/oc-ordercast-test-stream", render(**{"jwt.kind": "publicKey", "jwt.secret": "", "jwt.publicKey": pem})
        )

    def test_with_peers_a_job_migrates_after_every_install_and_upgrade(self):
        self.assertNotIn("Job/oc-ordercast-migrate", render())
        m = render(files=[regions()])
        job = m["Job/oc-ordercast-migrate"]
        annotations = job["metadata"]["annotations"]
        self.assertEqual(set(annotations["helm.sh/hook"].split(",")), {"post-install", "post-upgrade"})
        self.assertEqual(annotations["helm.sh/hook-delete-policy"], "before-hook-creation")
        pod = job["spec"]["template"]["spec"]
        self.assertEqual(pod["restartPolicy"], "Never")
        self.assertEqual(pod["containers"][0]["args"], ["migrate"])
        _, api = container(m, "api")
        self.assertEqual(pod["containers"][0]["image"], api["image"])
        self.assertNotIn("Job/oc-ordercast-migrate", render(files=[regions()], **{"migrate.job.enabled": False}))
        self.assertNotIn("Job/oc-ordercast-migrate", render(files=[regions()], **{"migrate.enabled": False}))

    def test_the_example_regions_render_lint_and_name_each_other(self):
        files = sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".yaml"))
        self.assertEqual(files, ["ap-south.yaml", "eu-west.yaml", "us-east.yaml"])
        apis = {}
        for f in files:
            path = os.path.join(EXAMPLES, f)
            code, out = helm("lint", "--strict", values={}, files=[path])
            self.assertEqual(code, 0, f"{f}: {out}")
            # Alone: the examples name an existing Secret for the rest.
            code, out = helm("template", "oc", values={}, files=[path])
            self.assertEqual(code, 0, f"{f}: {out}")
            m = manifests(out)
            me = f.removesuffix(".yaml")
            for what, c in processes(m):
                env = env_of(c)
                self.assertEqual(env["ORDERCAST_REGION"]["value"], me, f"{f} {what}")
                self.assertEqual(
                    env["ORDERCAST_PEERS"]["valueFrom"]["secretKeyRef"],
                    {"name": "oc-ordercast-peers", "key": "peers.json"},
                    f"{f} {what}",
                )
            peers = json.loads(m["Secret/oc-ordercast-peers"]["stringData"]["peers.json"])
            others = {"eu-west", "us-east", "ap-south"} - {me}
            self.assertEqual({p["region"] for p in peers}, others, f)
            for p in peers:
                self.assertTrue(p["api"].startswith("http://"), f)
                self.assertTrue(p["database"].startswith("postgres://"), f)
                apis.setdefault(p["region"], set()).add(p["api"])
            self.assertLessEqual(REGION_ALERTS, set(alerts(m)), f)
            self.assertIn("Job/oc-ordercast-migrate", m)
        # Every region is reached at the same address from both others.
        self.assertEqual({r: len(a) for r, a in apis.items()}, {"eu-west": 1, "us-east": 1, "ap-south": 1})

    def test_the_service_monitor_scrapes_the_admin_port(self):
        m = render(**{"serviceMonitor.enabled": True})
        self.assertEqual(m["ServiceMonitor/oc-ordercast"]["spec"]["endpoints"][0]["port"], "admin")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunsWithWhatItRenders(unittest.TestCase):
    """Every setting the chart gives a process is one that process reads
    (a misspelt variable would be silently ignored), and the process starts
    and becomes ready with them."""

    def secrets(self, manifests):
        """The chart-made Secrets' keys (distinct across them)."""
        keys = {}
        for name in ("Secret/oc-ordercast", "Secret/oc-ordercast-peers", "Secret/oc-ordercast-admin"):
            keys.update(manifests.get(name, {}).get("stringData", {}))
        return keys

    def env_of(self, manifests, c):
        secret = self.secrets(manifests)
        env = {}
        for e in c["env"]:
            if "valueFrom" in e:
                env[e["name"]] = secret[e["valueFrom"]["secretKeyRef"]["key"]]
            else:
                env[e["name"]] = e["value"]
        return env

    @contextlib.contextmanager
    def serving(self, role, env):
        """`ordercast <role>` with `env` on free loopback ports, ready;
        yields its public port."""
        admin, public = free_port(), free_port()
        env = {**env, "ORDERCAST_LISTEN": f"127.0.0.1:{public}", "ORDERCAST_ADMIN_LISTEN": f"127.0.0.1:{admin}"}
        with tempfile.TemporaryFile("w+") as log:
            process = subprocess.Popen([BIN, role], env={**os.environ, **env}, stdout=log, stderr=log)
            try:
                became_ready = ready(admin, process)
                if became_ready:
                    yield public
            finally:
                process.terminate()
                process.wait(timeout=60)
            log.seek(0)
            self.assertTrue(became_ready, f"{role} did not become ready:\n{log.read()}")

    def assertReady(self, role, env):
        """`ordercast <role>` with `env` (on free loopback ports) becomes ready."""
        with self.serving(role, env):
            pass

    def test_every_variable_is_one_the_subcommand_reads(self):
        m = render(
            files=[regions(forwardTimeout="8s", staleAfter="5s")],
            **{"jwt.issuer": "https://auth.example.com", "tls.caSecret": "db-ca"},
        )
        for role in ("api", "edge"):
            _, c = container(m, role)
            help_text = usage(role)
            for name in env_names(c):
                self.assertTrue(f"[env: {name}" in help_text, f"`ordercast {role}` does not read {name}")
        # The init container and the Job get the same settings; migrating needs only these.
        for name in (
            "ORDERCAST_DATABASE_URL",
            "ORDERCAST_LOG_FORMAT",
            "ORDERCAST_REGION",
            "ORDERCAST_PEERS",
            "ORDERCAST_FORWARD_TIMEOUT",
            "ORDERCAST_REGION_STALE_AFTER",
        ):
            self.assertTrue(f"[env: {name}" in usage("migrate"), f"`ordercast migrate` does not read {name}")
            for what, c in processes(m):
                self.assertIn(name, env_names(c), what)

    def test_both_roles_become_ready_with_the_rendered_peers(self):
        """ORDERCAST_PEERS as the chart writes it is what the processes
        accept. The peers are unreachable, which must not keep a region
        from serving; migrate (which would connect them) is not run with
        them here, so the test database stays without replication."""
        database = os.environ["ORDERCAST_TEST_DATABASE_URL"]
        redis = os.environ["ORDERCAST_TEST_REDIS_URL"]
        unreachable = [
            {"region": p["region"], "api": f"http://127.0.0.1:{free_port()}", "database": p["database"]}
            for p in PEERS
        ]
        # The test database's region: whatever test migrates first claims it as `local`.
        m = render(
            files=[regions(name="local", peers=unreachable, forwardTimeout="2s", staleAfter="4s")],
            **{"database.url": database, "redis.url": redis},
        )
        peers = self.secrets(m)["peers.json"]
        self.assertEqual(json.loads(peers), unreachable)
        for role in ("api", "edge"):
            spec, c = container(m, role)
            env = self.env_of(m, c)
            self.assertEqual(env["ORDERCAST_PEERS"], peers)
            migrate = self.env_of(m, spec["initContainers"][0])
            del migrate["ORDERCAST_PEERS"]
            subprocess.run([BIN, "migrate"], env={**os.environ, **migrate}, check=True, capture_output=True)
            self.assertReady(role, env)

    def test_both_roles_become_ready_with_the_rendered_settings(self):
        database = os.environ["ORDERCAST_TEST_DATABASE_URL"]
        redis = os.environ["ORDERCAST_TEST_REDIS_URL"]
        # A compound duration, which the binary must accept as rendered.
        m = render(**{"database.url": database, "redis.url": redis, "shutdownGrace": "1m30s"})
        for role in ("api", "edge"):
            spec, c = container(m, role)
            env = self.env_of(m, c)
            migrate = self.env_of(m, spec["initContainers"][0])
            subprocess.run([BIN, "migrate"], env={**os.environ, **migrate}, check=True, capture_output=True)
            self.assertReady(role, env)


    def test_the_helm_test_pods_script_passes_against_both_roles(self):
        """The `helm test` Pod's script, run by busybox as in the Pod, with
        the Services' addresses pointing at an api and an edge started with
        the rendered settings: it creates a restaurant and an order and
        sees order.created on the edge's stream."""
        database = os.environ["ORDERCAST_TEST_DATABASE_URL"]
        redis = os.environ["ORDERCAST_TEST_REDIS_URL"]
        m = render(**{"database.url": database, "redis.url": redis})
        spec, c = container(m, "api")
        migrate = self.env_of(m, spec["initContainers"][0])
        subprocess.run([BIN, "migrate"], env={**os.environ, **migrate}, check=True, capture_output=True)
        pod = m["Pod/oc-ordercast-test-stream"]["spec"]
        (test,) = pod["containers"]
        self.assertEqual(test["command"], ["/tools/busybox", "sh", "-euc"])
        for name in env_names(test):
            self.assertTrue(f"[env: {name}" in usage("token"), f"`ordercast token` does not read {name}")
        with self.serving("api", self.env_of(m, c)) as api, self.serving(
            "edge", self.env_of(m, container(m, "edge")[1])
        ) as edge, tempfile.TemporaryDirectory() as tmp:
            script = (
                test["args"][0]
                .replace("http://oc-ordercast-api:8080", f"http://127.0.0.1:{api}")
                .replace("http://oc-ordercast-edge:8080", f"http://127.0.0.1:{edge}")
                .replace("/tools/busybox", BUSYBOX)
                .replace("/tools/bin", os.path.join(tmp, "bin"))
                .replace("/usr/local/bin", os.path.dirname(os.path.abspath(BIN)))
                .replace("cd /work", f"cd {tmp}")
            )
            run = subprocess.run(
                [BUSYBOX, "sh", "-euc", script],
                env={"HOME": tmp, **self.env_of(m, test)},
                capture_output=True,
                text=True,
                timeout=120,
            )
            self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
            self.assertIn("order.created arrived on the edge's stream", run.stdout)


def usage(subcommand):
    run = subprocess.run([BIN, subcommand, "--help"], capture_output=True, text=True, check=True)
    return run.stdout


def ready(admin, process, deadline=30.0):
    """Waits for /readyz to answer 200 while the process lives."""
    until = time.monotonic() + deadline
    while time.monotonic() < until and process.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=1) as r:
                if r.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    return False


if __name__ == "__main__":
    unittest.main(verbosity=2)

"""Tests of the Helm chart: what it renders, and that the real binary runs
with the configuration it renders.

Run by scripts/chart.sh (`make chart`, and `make test`), which provides:
  HELM           the helm binary
  ORDERCAST_BIN  the ordercast binary
  ORDERCAST_TEST_DATABASE_URL, ORDERCAST_TEST_REDIS_URL  servers to run it on
"""

import os
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

import yaml

CHART = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELM = os.environ.get("HELM", "helm")
BIN = os.environ.get("ORDERCAST_BIN", "target/debug/ordercast")
SECRET = "chart-test-secret-0123456789-0123456789"
REQUIRED = {
    "database.url": "postgres://ordercast@db:5432/ordercast",
    "redis.url": "redis://redis:6379",
    "jwt.secret": SECRET,
}


def helm(*args, values=None):
    """Runs helm on the chart; returns (exit code, stdout + stderr)."""
    sets = []
    for key, value in (REQUIRED if values is None else values).items():
        sets += ["--set-string" if isinstance(value, str) else "--set", f"{key}={value}"]
    run = subprocess.run([HELM, *args, CHART, *sets], capture_output=True, text=True)
    return run.returncode, run.stdout + run.stderr


def render(**overrides):
    """The manifests for the required values plus `overrides`, by kind/name."""
    code, out = helm("template", "oc", values={**REQUIRED, **overrides})
    assert code == 0, out
    docs = [d for d in yaml.safe_load_all(out) if d]
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in docs}


def container(manifests, role):
    spec = manifests[f"Deployment/oc-ordercast-{role}"]["spec"]["template"]["spec"]
    return spec, next(c for c in spec["containers"] if c["name"] == role)


def env_names(c):
    return [e["name"] for e in c["env"]]


def seconds(duration):
    for suffix, factor in (("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)):
        if duration.endswith(suffix):
            return float(duration[: -len(suffix)]) * factor
    raise ValueError(duration)


class Renders(unittest.TestCase):
    def test_lint_is_clean(self):
        code, out = helm("lint", "--strict")
        self.assertEqual(code, 0, out)

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

    def test_the_ingress_sends_streams_to_the_edges_hashed_on_the_path(self):
        m = render(**{"ingress.enabled": True, "ingress.host": "oc.example.com"})
        edge = m["Ingress/oc-ordercast-edge"]
        self.assertEqual(
            edge["metadata"]["annotations"]["nginx.ingress.kubernetes.io/upstream-hash-by"], "$uri"
        )
        paths = {p["path"]: p["backend"]["service"]["name"] for p in edge["spec"]["rules"][0]["http"]["paths"]}
        self.assertEqual(paths["/v1/restaurants/[^/]+/(stream|events)$"], "oc-ordercast-edge")
        self.assertEqual(paths["/v1/ws"], "oc-ordercast-edge")
        api = m["Ingress/oc-ordercast-api"]
        self.assertNotIn("annotations", api["metadata"])
        self.assertEqual(api["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"], "oc-ordercast-api")
        self.assertNotIn("Ingress/oc-ordercast-edge", render())

    def test_autoscaling_leaves_replicas_to_the_autoscaler(self):
        m = render(**{"edge.autoscaling.enabled": True})
        self.assertNotIn("replicas", m["Deployment/oc-ordercast-edge"]["spec"])
        self.assertEqual(m["HorizontalPodAutoscaler/oc-ordercast-edge"]["spec"]["maxReplicas"], 10)
        self.assertNotIn("HorizontalPodAutoscaler/oc-ordercast-api", m)

    def test_the_alerts_watch_undelivered_events_postgres_and_redis(self):
        self.assertNotIn("PrometheusRule/oc-ordercast", render())
        m = render(**{"prometheusRule.enabled": True, "api.undeliveredAfter": "45s"})
        rules = {r["alert"]: r for r in m["PrometheusRule/oc-ordercast"]["spec"]["groups"][0]["rules"]}
        self.assertEqual(
            set(rules), {"OrdercastUndeliveredOrders", "OrdercastPostgresUnavailable", "OrdercastRedisDegraded"}
        )
        self.assertIn('kind="unavailable"', rules["OrdercastPostgresUnavailable"]["expr"])
        self.assertIn("ordercast_degraded_shards", rules["OrdercastRedisDegraded"]["expr"])
        rule = rules["OrdercastUndeliveredOrders"]
        self.assertIn("max(ordercast_undelivered_events", rule["expr"])
        self.assertIn("{{ $value }}", rule["annotations"]["description"])
        _, c = container(m, "api")
        self.assertEqual({e["name"]: e.get("value") for e in c["env"]}["ORDERCAST_UNDELIVERED_AFTER"], "45s")

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

    def env_of(self, manifests, c):
        secret = manifests["Secret/oc-ordercast"]["stringData"]
        env = {}
        for e in c["env"]:
            if "valueFrom" in e:
                env[e["name"]] = secret[e["valueFrom"]["secretKeyRef"]["key"]]
            else:
                env[e["name"]] = e["value"]
        return env

    def test_every_variable_is_one_the_subcommand_reads(self):
        m = render(**{"jwt.issuer": "https://auth.example.com", "tls.caSecret": "db-ca"})
        for role in ("api", "edge"):
            _, c = container(m, role)
            help_text = usage(role)
            for name in env_names(c):
                self.assertTrue(f"[env: {name}" in help_text, f"`ordercast {role}` does not read {name}")
        # The init container gets the same settings; migrating needs only these.
        for name in ("ORDERCAST_DATABASE_URL", "ORDERCAST_LOG_FORMAT"):
            self.assertTrue(f"[env: {name}" in usage("migrate"), f"`ordercast migrate` does not read {name}")

    def test_both_roles_become_ready_with_the_rendered_settings(self):
        database = os.environ["ORDERCAST_TEST_DATABASE_URL"]
        redis = os.environ["ORDERCAST_TEST_REDIS_URL"]
        m = render(**{"database.url": database, "redis.url": redis})
        for role in ("api", "edge"):
            spec, c = container(m, role)
            env = self.env_of(m, c)
            migrate = self.env_of(m, spec["initContainers"][0])
            subprocess.run([BIN, "migrate"], env={**os.environ, **migrate}, check=True, capture_output=True)
            admin = free_port()
            env["ORDERCAST_LISTEN"] = f"127.0.0.1:{free_port()}"
            env["ORDERCAST_ADMIN_LISTEN"] = f"127.0.0.1:{admin}"
            with tempfile.TemporaryFile("w+") as log:
                process = subprocess.Popen([BIN, role], env={**os.environ, **env}, stdout=log, stderr=log)
                try:
                    became_ready = ready(admin, process)
                finally:
                    process.terminate()
                    process.wait(timeout=60)
                log.seek(0)
                self.assertTrue(became_ready, f"{role} did not become ready:\n{log.read()}")


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

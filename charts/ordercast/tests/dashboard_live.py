"""The dashboard and the alert rules against a real Prometheus that scraped
a running Ordercast (scripts/dashboard-test.sh starts both).

  dashboard_live.py rules FILE         writes the chart's alert rules (as
                                       Prometheus loads them) to FILE
  dashboard_live.py check URL NS       every panel query returns data and
                                       every rule evaluates, on the
                                       Prometheus at URL, namespace NS
"""

import json
import sys
import urllib.parse
import urllib.request

import yaml

from test_chart import DASHBOARD, alerts, regions, render


def write_rules(path):
    rules = alerts(render(files=[regions()], **{"prometheusRule.enabled": True}))
    with open(path, "w") as f:
        yaml.safe_dump({"groups": [{"name": "ordercast", "rules": list(rules.values())}]}, f)


def api(base, path, **params):
    url = f"{base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


def panel_queries(namespace):
    """(panel title, query) of every target, with Grafana's variables set as
    a viewer of the test's namespace would have them."""
    with open(DASHBOARD) as f:
        dashboard = json.load(f)
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", "1m").replace("$namespace", namespace)
            yield panel["title"], expr


def check(base, namespace):
    empty = [
        f"{title}: {expr}"
        for title, expr in panel_queries(namespace)
        if not api(base, "query", query=expr)["result"]
    ]
    rules = [r for g in api(base, "rules")["groups"] for r in g["rules"]]
    broken = [
        f"{r['name']}: {r.get('lastError') or 'never evaluated'}"
        for r in rules
        if r["health"] != "ok" or r["lastEvaluation"].startswith("0001")
    ]
    for line in empty:
        print(f"no data: {line}", file=sys.stderr)
    for line in broken:
        print(f"rule failed: {line}", file=sys.stderr)
    queries = sum(1 for _ in panel_queries(namespace))
    print(f"{queries - len(empty)} of {queries} panel queries returned data; "
          f"{len(rules) - len(broken)} of {len(rules)} rules evaluated")
    return not empty and not broken and rules


if __name__ == "__main__":
    match sys.argv[1:]:
        case ["rules", path]:
            write_rules(path)
        case ["check", base, namespace]:
            sys.exit(0 if check(base, namespace) else 1)
        case _:
            sys.exit(__doc__)

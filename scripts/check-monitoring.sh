#!/usr/bin/env bash
# The monitoring checks the test suite cannot run, because Prometheus is not on PyPI:
#
#   1. promtool validates deploy/prometheus/prometheus.yml and alerts.yml;
#   2. promtool's rule tests (deploy/prometheus/alerts.test.yml) say when each alert fires;
#   3. a live run: the embedded stack, `framewire demo` with its worker's metrics port, a
#      gateway with a little traffic (one frame the worker dead-letters), the drift
#      monitor on the worker's observations, and a real Prometheus scraping all three
#      with the deployment's job names and alert rules. Every
#      query of the Grafana dashboard must return data, and every alert expression must
#      evaluate without error (an alert that does not fire returns nothing: that is fine).
#
# It installs nothing. Prometheus and promtool come from Debian/Ubuntu (about 25 s):
#   sudo apt-get update && sudo apt-get install -y prometheus
# Run from anywhere, after the README's install (.venv with the `stack` extra):
#   scripts/check-monitoring.sh            # about 65 s; KEEP=1 keeps its work directory
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

for tool in promtool prometheus; do
  if ! command -v "$tool" >/dev/null; then
    echo "check-monitoring: $tool not found; install it with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y prometheus" >&2
    exit 2
  fi
done
py=${PYTHON:-$root/.venv/bin/python}
[ -x "$py" ] || { echo "check-monitoring: no $py (run the README's install first)" >&2; exit 2; }
framewire=("$py" -m framewire)
# Job control: without it, bash starts background commands with SIGINT ignored, and the
# demo could not be interrupted into stopping its worker.
set -m

work=$(mktemp -d "${TMPDIR:-/tmp}/check-monitoring.XXXXXX")
# Everything framewire keeps, the embedded stack included, lives in the work directory:
# `stack down` below can only ever stop the stack this script started.
export FRAMEWIRE_STATE_DIR=$work/state FRAMEWIRE_LOG_FORMAT=json
pids=()  # Prometheus, the gateway
demo_pid=
cleanup() {
  # Only what this script started, by process id. SIGINT: the demo then stops its own
  # worker, gunicorn and Prometheus shut down cleanly. Then the embedded stack goes down.
  for pid in $demo_pid "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  for pid in $demo_pid "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  "${framewire[@]}" stack down >/dev/null 2>&1 || true
  if [ -n "${KEEP:-}" ]; then echo "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

echo "== 1. promtool check: the deployment's config and rules"
promtool check config deploy/prometheus/prometheus.yml
promtool check rules deploy/prometheus/alerts.yml

echo "== 2. promtool test rules: when each alert fires"
mkdir "$work/rules"
"$py" - "$work/rules/alerts.yml" <<'EOF'
# A copy of the rules without annotations: the tests pin labels, not the wording.
import sys
import yaml
rules = yaml.safe_load(open("deploy/prometheus/alerts.yml"))
for group in rules["groups"]:
    for rule in group["rules"]:
        rule.pop("annotations", None)
yaml.safe_dump(rules, open(sys.argv[1], "w"), sort_keys=False)
EOF
cp deploy/prometheus/alerts.test.yml "$work/rules/"
promtool test rules "$work/rules/alerts.test.yml"

echo "== 3. a live run scraped by Prometheus"
# Six free loopback ports at once (held together, so no two are the same).
read -r kafka_port redis_port metrics_port gateway_port prom_port monitor_port < <("$py" -c '
import socket
socks = [socket.socket() for _ in range(6)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
"${framewire[@]}" stack up --kafka-port "$kafka_port" --redis-port "$redis_port" >"$work/stack.log"
eval "$(grep '^export ' "$work/stack.log")"  # where the other commands find them

# The deployment's scrape jobs, pointed at this run's loopback ports, with its rules.
"$py" - "$work/prometheus.yml" "$metrics_port" "$gateway_port" "$monitor_port" <<'EOF'
import os, sys
import yaml
out, worker, gateway, monitor = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
config = yaml.safe_load(open("deploy/prometheus/prometheus.yml"))
ports = {"framewire-worker": worker, "framewire-gateway": gateway,
         "framewire-monitor": monitor}  # KeyError: a new job
config["global"] = {"scrape_interval": "2s", "evaluation_interval": "2s"}
config["rule_files"] = [os.path.abspath(f"deploy/prometheus/{f}") for f in config["rule_files"]]
config["scrape_configs"] = [
    {"job_name": job["job_name"],
     "static_configs": [{"targets": [f"127.0.0.1:{ports[job['job_name']]}"]}]}
    for job in config["scrape_configs"]
]
yaml.safe_dump(config, open(out, "w"))
EOF
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
pids+=($!)

# The drift monitor, on the observations of the demo's worker (one batch in two observed,
# so that its windows of 100 frames fill within the run).
"${framewire[@]}" monitor --follow --since 1m --window 100 --metrics-port "$monitor_port" \
  >"$work/monitor.log" 2>&1 &
pids+=($!)

# The demo's worker inherits FRAMEWIRE_METRICS_PORT (explicit settings go to the child).
FRAMEWIRE_METRICS_PORT=$metrics_port FRAMEWIRE_OBSERVE_EVERY=2 "${framewire[@]}" demo \
  --seconds 45 --device cpu --json >"$work/demo.log" 2>&1 &
demo_pid=$!

# A pixel limit above the worker's: the gateway passes a header the worker then refuses,
# which gives the dead-letter panels one real dead letter.
FRAMEWIRE_MAX_FRAME_PIXELS=1000000000 "${framewire[@]}" gateway --host 127.0.0.1 \
  --port "$gateway_port" --workers 1 --threads 8 >"$work/gateway.log" 2>&1 &
pids+=($!)

"$py" - "$metrics_port" "$gateway_port" <<'EOF'
# Wait for the worker and the gateway, then send images for 10 s, and one the worker refuses.
import struct, sys, time, urllib.error, urllib.request, zlib
from itertools import islice
from producers.synthetic import SyntheticSource
metrics, gateway = sys.argv[1], sys.argv[2]

def status(url, data=None, content_type="image/jpeg"):
    request = urllib.request.Request(url, data, {"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None

deadline = time.monotonic() + 180
for url in (f"http://127.0.0.1:{metrics}/readyz", f"http://127.0.0.1:{gateway}/readyz"):
    while status(url) != 200:
        if time.monotonic() > deadline:
            sys.exit(f"{url} never answered 200")
        time.sleep(0.5)
predict = f"http://127.0.0.1:{gateway}/v1/predict"
answers = [status(predict, f.data) for f in
           islice(SyntheticSource(streams=1, fps=10, seed=3, realtime=True), 100)]
def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
# A complete PNG claiming 20,000 x 20,000 pixels: above the worker's 40 Mpx limit.
header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")
refused = status(predict, bomb, "image/png")
print(f"gateway: {answers.count(200)} of {len(answers)} images answered 200; "
      f"the oversized one {refused}")
if answers.count(200) != len(answers) or refused != 422:
    sys.exit("the gateway traffic did not go as planned")
EOF
sleep 6  # a few scrapes and rule evaluations after the last request

"$py" - "$prom_port" <<'EOF'
# Every dashboard query over the run so far, every alert expression now.
import json, sys, time, urllib.parse, urllib.request
import yaml
api = f"http://127.0.0.1:{sys.argv[1]}/api/v1"
# Counters whose series appear only with their first event, which this run does not cause.
EVENT_ONLY = {"framewire_sink_retries_total": "no write was retried",
              "framewire_sink_failures_total": "no write failed for good",
              "framewire_backfill_frames_total": "no backfill job ran",
              "framewire_data_quality_events_total": "no stream was blank, badly exposed, "
                                                     "frozen or silent"}

def get(path, **params):
    with urllib.request.urlopen(f"{api}/{path}?{urllib.parse.urlencode(params)}") as r:
        return json.load(r)

failures, empty_ok, with_data = [], [], 0
targets = get("targets")["data"]["activeTargets"]
down = [t["scrapeUrl"] for t in targets if t["health"] != "up"]
if down or len(targets) != 3:
    failures.append(f"targets not up: {down or targets}")

dashboard = json.load(open("deploy/grafana/dashboards/framewire.json"))
now = time.time()
queries = [(p["title"], t["expr"]) for p in dashboard["panels"] if p["type"] != "row"
           for t in p["targets"]]
for title, expr in queries:
    result = get("query_range", query=expr, start=now - 600, end=now, step=2)
    series = result["data"]["result"]
    points = sum(len(s["values"]) for s in series)
    if points:
        with_data += 1
        print(f"  data   {len(series):2} series {points:4} points  {title}: {expr}")
        continue
    reasons = [why for name, why in EVENT_ONLY.items() if name in expr]
    if reasons:
        empty_ok.append(title)
        print(f"  empty  ({'; '.join(reasons)})  {title}: {expr}")
    else:
        failures.append(f"no data: {title}: {expr}")

rules = [r for g in yaml.safe_load(open("deploy/prometheus/alerts.yml"))["groups"]
         for r in g["rules"]]
for rule in rules:
    result = get("query", query=rule["expr"])  # raises on a PromQL error (HTTP 400)
    print(f"  alert  {len(result['data']['result'])} series match now  {rule['alert']}")
loaded = [r for g in get("rules")["data"]["groups"] for r in g["rules"]]
unhealthy = [(r["name"], r.get("lastError")) for r in loaded if r["health"] != "ok"]
if len(loaded) != len(rules) or unhealthy:
    failures.append(f"rules loaded {len(loaded)} of {len(rules)}, unhealthy: {unhealthy}")

print(f"dashboard: {with_data} of {len(queries)} queries returned data, "
      f"{len(empty_ok)} empty as expected; alerts: {len(rules)} expressions evaluated, "
      f"{len(loaded)} rules loaded and healthy in Prometheus")
if failures:
    sys.exit("FAILED:\n  " + "\n  ".join(failures))
EOF

echo "== waiting for the demo to finish"
demo_status=0
wait "$demo_pid" || demo_status=$?
demo_pid=
if [ "$demo_status" -ne 0 ]; then
  echo "the demo failed ($demo_status):" >&2
  tail -20 "$work/demo.log" >&2
  exit 1
fi
grep '^done:' "$work/demo.log"
echo "check-monitoring: OK"

"""The deployment files cannot run here (no Docker engine, no cluster, no Grafana): check
that everything they name exists in the project and that they agree with each other.

docker-compose.yml, the Procfile, the Dockerfile, the Prometheus config and alert rules,
the Grafana provisioning and dashboard, the Kubernetes manifests and the CI workflow: each
command is a real `framewire` command, each FRAMEWIRE_* variable a real setting, each
scrape port a port the scraped process serves, each query a metric the code exports.
scripts/check-monitoring.sh runs the monitoring files against a real Prometheus.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import click
import yaml
from prometheus_client.metrics import MetricWrapperBase

from foundation.settings import Settings, describe
from framewire.cli import cli
from mlops.monitor import metrics as monitor_metrics
from producers.gateway.metrics import GatewayMetrics
from workers import metrics as worker_metrics

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {variable for variable, _, _ in describe()}
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "framewire.json"
K8S = ROOT / "deploy" / "k8s"
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def check_command(argv: list[str]) -> None:
    """A `framewire ...` command must resolve to a real CLI command; `celery -A M` to a module."""
    if argv[0] == "framewire":
        ctx = click.Context(cli)
        command: click.Command = cli
        for word in argv[1:]:
            if word.startswith("-") or not isinstance(command, click.Group):
                break
            found = command.get_command(ctx, word)
            assert found is not None, f"no such command: {' '.join(argv)}"
            command = found
        assert "not implemented yet" not in (command.help or ""), argv
    elif argv[0] == "celery":
        importlib.import_module(argv[argv.index("-A") + 1])
    else:
        raise AssertionError(f"unknown program {argv[0]}")


def check_settings(names: Any, where: str) -> None:
    for variable in names:
        if variable.startswith("FRAMEWIRE_"):
            assert variable in SETTINGS, f"{where}: unknown setting {variable}"


def flag(argv: list[str], name: str) -> str | None:
    """The value of `--name VALUE` or `--name=VALUE` in argv."""
    for i, word in enumerate(argv):
        if word == name and i + 1 < len(argv):
            return argv[i + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    return None


# -- docker-compose.yml ----------------------------------------------------------------------

# Services with no healthcheck, and why: they serve nothing another service waits on.
NO_HEALTHCHECK = {
    "topics": "runs once; its dependents wait for it to complete",
    "producer": "the demo's synthetic cameras; nothing depends on them",
}


def compose_services() -> dict[str, dict]:
    return load(COMPOSE)["services"]


def test_compose_services_use_what_exists():
    services = compose_services()
    for name, service in services.items():
        build = service.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).is_file(), name
        if "command" in service and build:
            check_command(service["command"])
        check_settings(service.get("environment", {}), name)
        for dependency in service.get("depends_on", []):
            assert dependency in services, f"{name}: depends on {dependency}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: mounts {source}, which is missing"
        assert "healthcheck" in service or name in NO_HEALTHCHECK, f"{name}: no healthcheck"


def test_compose_has_a_cpu_and_a_gpu_worker():
    services = compose_services()
    workers = {name: s for name, s in services.items() if s.get("command", [])[:2] ==
               ["framewire", "worker"]}  # fmt: skip
    profiles = {name: tuple(s.get("profiles", ())) for name, s in workers.items()}
    assert sorted(profiles.values()) == [("cpu",), ("gpu",)], profiles
    for name, service in workers.items():
        device = service["environment"]["FRAMEWIRE_DEVICE"]
        if service["profiles"] == ["gpu"]:
            assert device == "cuda" and "cu" in service["build"]["args"]["TORCH_INDEX"]
            (gpu,) = service["deploy"]["resources"]["reservations"]["devices"]
            assert gpu["driver"] == "nvidia" and gpu["capabilities"] == ["gpu"], name
        else:
            assert device == "cpu" and "deploy" not in service, name


def test_compose_keeps_secrets_out_of_the_file():
    services = compose_services()
    grafana = services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", grafana), grafana
    # Passed through from the shell or .env (a key with no value), never written here.
    assert services["flower"]["environment"]["FLOWER_BASIC_AUTH"] is None
    assert services["gateway"]["environment"]["FRAMEWIRE_API_KEYS"] is None
    assert flag(services["flower"]["command"], "--basic-auth") is None


def test_compose_redis_keeps_an_append_only_file_on_a_volume():
    redis = compose_services()["redis"]
    assert flag(redis["command"], "--appendonly") == "yes"
    volume = next(v for v in redis["volumes"] if v.endswith(":/data"))
    assert volume.split(":")[0] in load(COMPOSE)["volumes"]


def test_procfile_commands_exist():
    processes = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(":", 1)
            processes[name] = shlex.split(command)
            check_command(processes[name])
    assert set(processes) == {"worker", "gateway", "flower", "beat"}


def test_dockerfile_copies_every_package():
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    # The packages pyproject.toml installs (tomllib is 3.11+; framewire supports 3.10).
    line = re.search(r"^include = \[(.*)\]$", (ROOT / "pyproject.toml").read_text(), re.M)
    assert line is not None
    packages = [p.strip().strip('"').rstrip("*") for p in line.group(1).split(",")]
    assert "foundation" in packages
    for package in packages:
        assert f"COPY {package} " in dockerfile, f"the image lacks {package}/"


# -- what the services serve and what Prometheus scrapes -----------------------------------


def metrics_port(argv: list[str], env: dict[str, Any]) -> int | None:
    """The port a `framewire` process serves /metrics on, from its flags and environment."""
    settings = Settings.load(environ={k: v for k, v in env.items() if isinstance(v, str)})
    if argv[:2] == ["framewire", "worker"]:
        return int(flag(argv, "--metrics-port") or settings.metrics_port) or None
    if argv[:2] == ["framewire", "gateway"]:
        return int(flag(argv, "--port") or settings.gateway_port)
    if argv[:2] == ["framewire", "monitor"]:
        return int(flag(argv, "--metrics-port") or 0) or None
    return None


def scrape_targets() -> dict[str, list[tuple[str, int]]]:
    """Each scrape job of deploy/prometheus/prometheus.yml -> its (host, port) targets."""
    jobs: dict[str, list[tuple[str, int]]] = {}
    for job in load(PROMETHEUS)["scrape_configs"]:
        targets = jobs.setdefault(job["job_name"], [])
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                targets.append((host, int(port)))
        for dns in job.get("dns_sd_configs", []):
            targets += [(name, int(dns["port"])) for name in dns["names"]]
    return jobs


def test_prometheus_scrapes_every_port_compose_serves_metrics_on():
    services = compose_services()
    by_host: dict[str, list[str]] = {}
    for name, service in services.items():
        aliases = (service.get("networks") or {}).get("default", {}).get("aliases", [])
        for host in (name, *aliases):
            by_host.setdefault(host, []).append(name)
    scraped = set()
    for job, targets in scrape_targets().items():
        for host, port in targets:
            assert host in by_host, f"{job}: {host} is no compose service or alias"
            for name in by_host[host]:
                service = services[name]
                served = metrics_port(service.get("command", []), service.get("environment", {}))
                assert served == port, f"{job} scrapes {name} on {port}; it serves {served}"
                scraped.add(name)
    serving = {name for name, s in services.items()
               if metrics_port(s.get("command", []), s.get("environment", {}))}  # fmt: skip
    assert serving == scraped, f"not scraped: {serving - scraped}"


def test_prometheus_loads_the_rules_compose_mounts():
    config = load(PROMETHEUS)
    for rule_file in config["rule_files"]:
        assert (PROMETHEUS.parent / rule_file).is_file(), rule_file
    mounts = compose_services()["prometheus"]["volumes"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in mounts  # the image's config directory


# -- every query names what the code exports ---------------------------------------------------

SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count"),
            "info": ("_info",)}  # fmt: skip
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
                "unless", "bool", "offset", "inf", "nan"}  # fmt: skip
GROUPING = r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)"


def exported_series() -> dict[str, set[str] | None]:
    """Every series name the workers, the gateway and the monitor export -> its label names
    (None: any, as an Info's labels are its values), plus Prometheus's own `up`."""
    collectors = [m for m in vars(worker_metrics).values() if isinstance(m, MetricWrapperBase)]
    assert {m._name for m in collectors} >= set(worker_metrics.METRIC_NAMES)
    collectors = [m for m in collectors if m._name in worker_metrics.METRIC_NAMES]
    collectors += [m for m in vars(GatewayMetrics()).values() if isinstance(m, MetricWrapperBase)]
    collectors += [m for m in vars(monitor_metrics).values() if isinstance(m, MetricWrapperBase)]
    series: dict[str, set[str] | None] = {"up": set()}
    for metric in collectors:
        for suffix in SUFFIXES[metric._type]:
            labels = set(metric._labelnames) | ({"le"} if suffix == "_bucket" else set())
            series[metric._name + suffix] = None if metric._type == "info" else labels
    return series


def promql_names(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) that a PromQL expression uses."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals say nothing here
    labels = {m for block in re.findall(r"\{([^}]*)\}", text)
              for m in re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", block)}  # fmt: skip
    labels |= {label.strip() for clause in re.findall(GROUPING, text)
               for label in clause.split(",") if label.strip()}  # fmt: skip
    text = re.sub(GROUPING, " ", re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text))
    words = set(re.findall(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()", text))
    return words - PROMQL_WORDS, labels


def check_query(expr: str, where: str, series: dict[str, set[str] | None], jobs: set[str]):
    names, labels = promql_names(expr)
    assert names, f"{where}: no metric in {expr!r}"
    unknown = names - series.keys()
    assert not unknown, f"{where}: {expr!r} names {unknown}, which nothing exports"
    allowed = {"job", "instance"}  # Prometheus adds them to every series it scrapes
    info = False  # an Info's labels are whatever the code puts in it: any is allowed
    for name in names:
        own = series[name]
        if own is None:
            info = True
            continue
        # A metric's own job label is renamed exported_job: `job` is the scrape job.
        assert "job" not in own or "job" not in labels, f"{where}: use exported_job in {expr!r}"
        allowed |= {f"exported_{label}" if label in ("job", "instance") else label
                    for label in own}  # fmt: skip
    assert info or labels <= allowed, f"{where}: {expr!r} uses labels {labels - allowed}"
    for job in re.findall(r'\bjob\s*=\s*"([^"]*)"', expr):
        assert job in jobs, f"{where}: no scrape job {job!r} in prometheus.yml"


def dashboard_panels() -> list[dict]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def test_dashboard_and_alert_queries_name_only_exported_metrics():
    series, jobs = exported_series(), set(scrape_targets())
    for panel in dashboard_panels():
        assert panel["targets"] and panel.get("description"), panel["title"]
        for target in panel["targets"]:
            check_query(target["expr"], f"panel {panel['title']!r}", series, jobs)
    rules = [rule for group in load(ALERTS)["groups"] for rule in group["rules"]]
    assert {rule["alert"] for rule in rules} >= {
        "FramewireWorkerDown", "FramewireConsumerLagGrowing", "FramewireDeadLetterRate",
        "FramewireNoResults", "FramewireConsumerStalled",
    }  # fmt: skip
    for rule in rules:
        check_query(rule["expr"], f"alert {rule['alert']}", series, jobs)
        anchor = rule["alert"].lower()
        assert rule["annotations"]["runbook"] == f"docs/OPERATIONS.md#{anchor}"
        assert f"### {rule['alert']}" in (ROOT / "docs" / "OPERATIONS.md").read_text()


def test_the_query_parser_sees_metrics_and_labels():
    names, labels = promql_names(
        'histogram_quantile(0.99, sum by (le) (rate(a_bucket{job="x", s!~"y"}[1m]))) '
        "/ on() group_left scalar(b_total offset 5m) or vector(0)"
    )
    assert names == {"a_bucket", "b_total"} and labels == {"le", "job", "s"}


def test_grafana_finds_prometheus_and_the_dashboard():
    services = compose_services()
    (source,) = load(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    assert source["url"] == "http://prometheus:9090" and "prometheus" in services
    (provider,) = load(GRAFANA / "provisioning" / "dashboards" / "framewire.yml")["providers"]
    mounts = dict(v.split(":")[:2] for v in services["grafana"]["volumes"])
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    panels = dashboard_panels()
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        for datasource in (panel["datasource"], *(t["datasource"] for t in panel["targets"])):
            assert datasource == {"type": "prometheus", "uid": source["uid"]}, panel["title"]


# -- Kubernetes ----------------------------------------------------------------------------


def k8s_objects() -> dict[tuple[str, str], dict]:
    """(kind, name) -> object, from every manifest under deploy/k8s/."""
    objects = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            for doc in yaml.safe_load_all(path.read_text()):
                objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


def pod_spec(obj: dict) -> dict:
    return obj["spec"]["template"]["spec"]


def k8s_settings(objects: dict) -> Settings:
    """The settings the ConfigMap gives every pod (a bad value raises SettingsError)."""
    return Settings.load(environ=objects[("ConfigMap", "framewire-config")]["data"])


def test_kustomization_applies_every_manifest_but_the_secret_example():
    resources = load(K8S / "kustomization.yaml")["resources"]
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(resources) == manifests - {"secret.example.yaml"}


def test_k8s_commands_settings_and_references_exist():
    objects = k8s_objects()
    k8s_settings(objects)
    for (kind, name), obj in objects.items():
        if kind in ("ConfigMap", "Secret"):
            check_settings({**obj.get("data", {}), **obj.get("stringData", {})}, name)
        if kind not in ("Deployment", "Job"):
            continue
        for container in pod_spec(obj)["containers"]:
            check_command(container["command"] + container.get("args", []))
            check_settings([e["name"] for e in container.get("env", [])], name)
            for source in container.get("envFrom", []):
                ((ref, target),) = source.items()
                wanted = "ConfigMap" if ref == "configMapRef" else "Secret"
                assert (wanted, target["name"]) in objects, f"{name}: no {wanted} {target}"


def test_k8s_probes_and_scrape_ports_match_what_the_pods_serve():
    objects = k8s_objects()
    settings = k8s_settings(objects)
    expected = {"framewire-worker": ("metrics", settings.metrics_port, "/readyz"),
                "framewire-gateway": ("http", settings.gateway_port, "/readyz")}  # fmt: skip
    for name, (port_name, port, ready) in expected.items():
        deployment = objects[("Deployment", name)]
        (container,) = pod_spec(deployment)["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports[port_name] == port, name
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(port), name
        assert container["readinessProbe"]["httpGet"] == {"path": ready, "port": port_name}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port_name}
    worker = objects[("Deployment", "framewire-worker")]
    assert pod_spec(worker)["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    service = objects[("Service", "framewire-gateway")]
    pod_labels = objects[("Deployment", "framewire-gateway")]["spec"]["template"]["metadata"]
    assert service["spec"]["selector"].items() <= pod_labels["labels"].items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_k8s_monitor_runs_alone_and_serves_the_port_it_is_scraped_on():
    objects = k8s_objects()
    monitor = objects[("Deployment", "framewire-monitor")]
    # One pod, never two at once: each would send every drift event (monitor.yaml).
    assert monitor["spec"]["replicas"] == 1
    assert monitor["spec"]["strategy"]["type"] == "Recreate"
    (container,) = pod_spec(monitor)["containers"]
    served = metrics_port(container["command"], objects[("ConfigMap", "framewire-config")]["data"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    annotations = monitor["spec"]["template"]["metadata"]["annotations"]
    assert ports["metrics"] == served == int(annotations["prometheus.io/port"])
    assert served in {port for _, port in scrape_targets()["framewire-monitor"]}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == "metrics", probe


def test_keda_scales_the_workers_group_on_its_lag_up_to_the_partition_count():
    objects = k8s_objects()
    settings = k8s_settings(objects)
    scaled = objects[("ScaledObject", "framewire-worker")]["spec"]
    assert ("Deployment", scaled["scaleTargetRef"]["name"]) in objects
    assert scaled["maxReplicaCount"] == settings.partitions
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert all(isinstance(value, str) for value in meta.values()), meta  # KEDA wants strings
    assert meta["consumerGroup"] == settings.group_id == "framewire-workers"
    assert meta["topic"] == settings.frames_topic == "framewire.frames"
    assert meta["bootstrapServers"] == settings.kafka_bootstrap
    assert int(meta["lagThreshold"]) > 0


def test_disruption_budgets_select_pods_that_exist():
    objects = k8s_objects()
    budgets = [obj for (kind, _), obj in objects.items() if kind == "PodDisruptionBudget"]
    assert len(budgets) == 2
    pods = [obj["spec"]["template"]["metadata"]["labels"].items()
            for (kind, _), obj in objects.items() if kind == "Deployment"]  # fmt: skip
    for budget in budgets:
        selector = budget["spec"]["selector"]["matchLabels"].items()
        assert any(selector <= labels for labels in pods), budget


# -- CI and scripts ------------------------------------------------------------------------


def test_ci_workflow_runs_what_ci_run_runs():
    from framewire.cli.bench import bench

    steps = [step for job in load(WORKFLOW)["jobs"].values() for step in job["steps"]]
    runs = "\n".join(step.get("run", "") for step in steps)
    for step in steps:
        check_settings(step.get("env", {}), step.get("name", "a CI step"))
    ci_run = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci_run in runs, "the workflow must run the README's test command as .ci/run does"
    assert "ruff check" in runs and "docker build" in runs
    known = {opt for param in bench.params for opt in param.opts}
    bench_lines = [line for line in runs.splitlines() if "framewire bench" in line]
    assert bench_lines
    for line in bench_lines:
        used = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", line.split("framewire bench", 1)[1]))
        assert used <= known, used - known


def test_scripts_parse_and_use_real_settings_and_bench_flags():
    from framewire.cli.bench import bench

    known = {opt for param in bench.params for opt in param.opts}
    for script in sorted((ROOT / "scripts").glob("*.sh")):
        subprocess.run(["bash", "-n", str(script)], check=True)
        text = script.read_text()
        check_settings(re.findall(r"FRAMEWIRE_[A-Z0-9_]+", text), script.name)
        marker = "python3 -m framewire bench"
        if marker in text:
            call = text.split(marker, 1)[1].split("2>&1", 1)[0]
            used = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", call))
            assert used <= known, (script.name, used - known)

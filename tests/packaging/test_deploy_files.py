"""deploy/: the Compose file against the Compose specification's schema (check-jsonschema's vendored copy),
the Kubernetes manifests against Kubernetes' own schemas (kubernetes-validate ships them): no cluster, no network.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="in the dev extra: pip install -e '.[dev]'")
pytest.importorskip("check_jsonschema", reason="in the dev extra: pip install -e '.[dev]'")

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUBERNETES = "1.37"
MANIFESTS = sorted((DEPLOY / "k8s").glob("*.yaml"))
SECRET_KEYS = {"events-url", "scores-url", "mlflow-uri", "dashboard-session-secret"}


def compose_problems(path: Path) -> str | None:
    """check-jsonschema's verdict on a Compose file: None when valid, else its report."""
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return None if done.returncode == 0 else done.stdout + done.stderr


def kinds() -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            found.setdefault(doc["kind"], []).append(doc)
    return found


def containers(doc: dict) -> list[dict]:
    spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
    return spec["template"]["spec"]["containers"]


def test_the_compose_file_is_valid_and_runs_service_postgres_mlflow_and_scheduler():
    assert compose_problems(DEPLOY / "docker-compose.yml") is None
    services = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]
    assert set(services) == {"service", "postgres", "mlflow", "scheduler"}
    assert services["scheduler"]["entrypoint"][-1] == "scheduler"
    assert "--workers=1" in services["mlflow"]["entrypoint"]


def test_a_compose_file_that_breaks_the_specification_is_refused(tmp_path):
    broken = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    broken["services"]["service"]["ports"] = {"http": 3000}  # a mapping where the spec wants a list
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    assert compose_problems(path) is not None


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_each_kubernetes_manifest_validates_against_the_kubernetes_schema(path: Path):
    for doc in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_a_manifest_with_a_field_kubernetes_does_not_know_is_refused():
    deployment = kinds()["Deployment"][0]
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


def test_the_manifests_hold_a_ready_checked_deployment_a_service_an_autoscaler_and_a_retrain_cronjob():
    found = kinds()
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "CronJob"} <= set(found)
    served = next(d for d in found["Deployment"] if d["metadata"]["name"] == found["Service"][0]["metadata"]["name"])
    assert containers(served)[0]["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert found["HorizontalPodAutoscaler"][0]["spec"]["scaleTargetRef"]["name"] == served["metadata"]["name"]
    assert containers(found["CronJob"][0])[0]["command"][3] == "retrain"


def test_exactly_one_process_rescores_and_the_service_selects_none_of_it():
    found = kinds()
    rescoring = {
        d["metadata"]["name"]: (d["spec"]["replicas"], env["value"])
        for d in found["Deployment"]
        for env in containers(d)[0]["env"]
        if env["name"] == "LEADRADAR_SERVING__RESCORE"
    }
    assert sorted(v for _, v in rescoring.values()) == ["false", "true"]
    assert all(replicas == 1 for replicas, v in rescoring.values() if v == "true")
    selector = found["Service"][0]["spec"]["selector"].items()
    for d in found["Deployment"]:
        labels = d["spec"]["template"]["metadata"]["labels"].items()
        assert (selector <= labels) == (rescoring[d["metadata"]["name"]][1] == "false")


def test_database_urls_and_secrets_come_from_the_secret_never_from_the_manifest():
    for docs in kinds().values():
        for doc in docs:
            if doc["kind"] not in ("Deployment", "CronJob"):
                continue
            for env in containers(doc)[0]["env"]:
                if env["name"].endswith(("_URL", "_URI", "_SECRET")):
                    ref = env["valueFrom"]["secretKeyRef"]
                    assert ref["name"] == "leadradar" and ref["key"] in SECRET_KEYS, env
                    assert "value" not in env

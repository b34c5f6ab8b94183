"""The shipped alerts (manifests/components/prometheusrule): valid for promtool, each one
unit-tested to fire when it should and stay silent otherwise (tests/rules/*.test.yaml),
each with its summary, description and runbook section."""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.support.prometheus import promtool, rendered_rule, rules_of, write_rule_file
from tests.support.ship import kustomize

RULE_TESTS = Path(__file__).parent / "rules"
RUNBOOKS = Path(__file__).resolve().parents[1] / "docs" / "runbooks.md"


@pytest.fixture(scope="module")
def rule(tmp_path_factory) -> dict:
    return rendered_rule(tmp_path_factory.mktemp("rule"))


def test_the_component_renders_one_prometheusrule_beside_the_base(rule):
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["namespace"] == "monitoring"
    assert set(rule["spec"]) == {"groups"}
    for group in rule["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules"}
        for each in group["rules"]:
            assert set(each) <= {"alert", "expr", "for", "labels", "annotations"}


def test_promtool_checks_the_rules(rule, tmp_path):
    path = write_rule_file(rule, tmp_path / "rules.yaml")
    done = promtool("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules_of(rule))} rules found" in done.stdout


def test_promtool_unit_tests_pass(rule, tmp_path):
    """tests/rules/*.test.yaml against the rendered rules. The unit tests compare each
    alert's summary; description and runbook link are checked below, not per case."""
    rule = copy.deepcopy(rule)
    for each in rules_of(rule):
        each["annotations"] = {"summary": each["annotations"]["summary"]}
    write_rule_file(rule, tmp_path / "rules.yaml")
    files = sorted(RULE_TESTS.glob("*.test.yaml"))
    assert files
    for path in files:
        shutil.copy(path, tmp_path / path.name)
    done = promtool("test", "rules", *(path.name for path in files), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(files), done.stdout


def test_every_alert_is_tested_firing_and_silent(rule):
    fired: set[str] = set()
    silent: set[str] = set()
    for path in RULE_TESTS.glob("*.test.yaml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case["alert_rule_test"]:
                (fired if check["exp_alerts"] else silent).add(check["alertname"])
    alerts = {each["alert"] for each in rules_of(rule)}
    assert alerts - fired == set(), "never seen firing"
    assert alerts - silent == set(), "never seen silent"
    assert len(alerts) == 8


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


def test_every_alert_has_a_summary_a_description_and_a_runbook_section(rule):
    anchors = _anchors(RUNBOOKS.read_text())
    for each in rules_of(rule):
        annotations = each["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}, each["alert"]
        assert annotations["summary"] and annotations["description"]
        page, _, anchor = annotations["runbook_url"].partition("#")
        assert page.endswith("/docs/runbooks.md")
        assert anchor == each["alert"].lower()
        assert anchor in anchors, anchor
        assert each["labels"]["severity"] in {"warning", "critical"}


def test_every_threshold_is_the_last_word_after_one_comparison(rule):
    """What the README's overlay relies on to patch a threshold by alert name."""
    for each in rules_of(rule):
        if each["alert"] in {"EdgeFleetDegraded", "EdgeKubernetesSyncStale"}:
            _, threshold = each["expr"].split(" > ")
            assert re.fullmatch(r"\d+(\.\d+)?", threshold.strip()), each["alert"]
        assert re.fullmatch(r"\d+[smh]", each["for"]), each["alert"]


def test_readme_monitoring_overlay_sets_release_label_thresholds_and_runbooks(tmp_path):
    """The README's "Monitoring the fleet" overlay, beside a copy of manifests/, does what
    it says, and the rules it renders still pass promtool."""
    readme = (RUNBOOKS.parents[1] / "README.md").read_text()

    def block(marker: str) -> str:
        return readme.split(marker, 1)[1].split("\n", 1)[1].split("```", 1)[0]

    root = tmp_path / "kustomize"
    shutil.copytree(RUNBOOKS.parents[1] / "manifests", root / "manifests")
    (root / "my-monitoring").mkdir()
    (root / "my-monitoring" / "kustomization.yaml").write_text(
        block("# my-monitoring/kustomization.yaml")
    )
    (root / "my-monitoring" / "alert-settings.yaml").write_text(
        block("# my-monitoring/alert-settings.yaml")
    )
    objects = kustomize(root / "my-monitoring")
    operator_kinds = [o for o in objects if o["apiVersion"].startswith("monitoring.coreos.com/")]
    assert sorted(o["kind"] for o in operator_kinds) == [
        "PrometheusRule",
        "ServiceMonitor",
        "ServiceMonitor",
    ]
    for obj in operator_kinds:
        assert obj["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    # Nothing else gets the label, and the local-config settings are not applied.
    assert all(
        "release" not in o["metadata"].get("labels", {}) for o in objects if o not in operator_kinds
    )
    assert not [o for o in objects if o["metadata"]["name"] == "alert-settings"]
    (dashboard,) = [o for o in objects if o["metadata"]["name"] == "edge-metrics-dashboard"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"

    (rule,) = [o for o in operator_kinds if o["kind"] == "PrometheusRule"]
    by_name = {each["alert"]: each for each in rules_of(rule)}
    assert by_name["EdgeDeviceDown"]["for"] == "10m"
    assert by_name["EdgeFleetDegraded"]["expr"].endswith(" > 25")
    assert by_name["EdgeKubernetesSyncStale"]["expr"].endswith(" > 1800")
    for alert, each in by_name.items():
        assert each["annotations"]["runbook_url"] == (
            "https://git.example.com/ops/edge-metrics-server/-/blob/main/docs/runbooks.md#"
            + alert.lower()
        )
    done = promtool("check", "rules", str(write_rule_file(rule, tmp_path / "rules.yaml")))
    assert done.returncode == 0, done.stdout + done.stderr

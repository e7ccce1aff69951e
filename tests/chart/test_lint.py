"""Dockerfiles are hadolint-clean, shell scripts shellcheck-clean, and the cluster files agree with versions.env."""

import subprocess

import pytest
import yaml

from tests.chart.helm import ROOT, tool

SCRIPTS = sorted([*ROOT.glob("cluster/*.sh"), *ROOT.glob("scripts/*.sh"), *ROOT.glob("charts/*/files/*.sh"),
                  ROOT / ".ci" / "run"])
DOCKERFILES = sorted(ROOT.glob("*/Dockerfile"))


def versions() -> dict[str, str]:
    lines = (ROOT / "cluster" / "versions.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfiles_are_hadolint_clean(dockerfile):
    done = subprocess.run([tool("hadolint"), str(dockerfile)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    stages = dockerfile.read_text().split("\nFROM ")[1:]
    assert len(stages) >= 2, "multi-stage: build tools stay out of the image"
    # Every stage that is an image (the default one last, --target torch) runs as UID 10001.
    images = [stage for stage in stages if "ENTRYPOINT" in stage]
    assert images and stages[-1] in images and all("USER 10001" in stage for stage in images)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_shell_scripts_are_shellcheck_clean(script):
    done = subprocess.run([tool("shellcheck"), "-x", str(script)], cwd=ROOT, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_cluster_files_use_the_pinned_versions():
    pinned = versions()
    cluster = yaml.safe_load((ROOT / "cluster" / "eksctl-cluster.yaml").read_text())
    assert cluster["metadata"]["version"] == pinned["KUBERNETES_VERSION"]
    assert cluster["iam"]["withOIDC"] is True
    groups = {group["name"]: group for group in cluster["managedNodeGroups"]}
    assert groups["spot"]["spot"] is True and not groups["on-demand"].get("spot")
    serving = yaml.safe_load((ROOT / "cluster" / "knative-serving.yaml").read_text())
    assert serving["spec"]["version"] == pinned["KNATIVE_SERVING_VERSION"]
    assert serving["spec"]["config"]["autoscaler"]["enable-scale-to-zero"] == "true"
    install = (ROOT / "cluster" / "install.sh").read_text()
    for name in ("CERT_MANAGER_VERSION", "ISTIO_VERSION", "KNATIVE_OPERATOR_VERSION", "KSERVE_VERSION", "KEDA_VERSION"):
        assert f'"${name}"' in install, f"install.sh does not install {name}"
    crd_dirs = {p.name for p in (ROOT.parent / "shared" / "crds").glob("*")}
    if crd_dirs:  # the schemas the tests validate against are of the versions we install
        assert f"kserve-{pinned['KSERVE_VERSION']}" in crd_dirs
        assert f"istio-{pinned['ISTIO_VERSION']}" in crd_dirs
        assert f"knative-serving-v{pinned['KNATIVE_SERVING_VERSION']}" in crd_dirs


def test_install_rolls_a_failed_release_back_with_flags_the_pinned_helm_has():
    install = (ROOT / "cluster" / "install.sh").read_text()
    chart_install = install[install.index('helm upgrade --install text-classifier'):]
    chart_install = chart_install[:chart_install.index("\n\n") if "\n\n" in chart_install else None]
    assert "--rollback-on-failure" in chart_install and "--wait=watcher" in chart_install
    assert "helm test text-classifier" in install and "helm rollback text-classifier" in install
    # Helm v4's names: v3's --atomic is gone, and an unknown flag would stop the install midway
    usage = subprocess.run([tool("helm"), "upgrade", "--help"], capture_output=True, text=True, check=True).stdout
    assert "--rollback-on-failure" in usage and "watcher" in usage

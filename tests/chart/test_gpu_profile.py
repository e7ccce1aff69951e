"""The GPU profile (values-gpu.yaml, docs/gpu.md) puts each predictor on one GPU of the cluster's GPU node group,
and only the predictor; the default profile asks for no GPU. (Rendered and validated against the CRDs with every
values file by test_chart.py.)"""

import yaml

from tests.chart.helm import CHART, ROOT, by_kind, render

GPU_VALUES = CHART / "values-gpu.yaml"


def predictors(objects: list[dict]) -> dict[str, dict]:
    return {o["metadata"]["name"]: o["spec"]["predictor"] for o in by_kind(objects, "InferenceService")}


def test_the_gpu_profile_gives_each_predictor_one_gpu_on_the_gpu_nodes():
    for name, predictor in predictors(render(GPU_VALUES)).items():
        container = predictor["containers"][0]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1, name
        assert container["image"].endswith(f"/predictor:{name}-0.1.0-gpu")
        assert {"--backend=auto", "--max_batch_size=256"} <= {arg.split("  #")[0] for arg in container["args"]}
        assert predictor["nodeSelector"] == {"accelerator": "nvidia"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in predictor["tolerations"]


def test_the_default_profile_asks_for_no_gpu():
    for predictor in predictors(render()).values():
        assert "nvidia.com/gpu" not in predictor["containers"][0]["resources"].get("limits", {})
        assert "nodeSelector" not in predictor and "tolerations" not in predictor


def test_the_gpu_node_group_is_what_the_profile_selects_and_tolerates():
    """The nodeSelector matches the gpu node group's labels, the toleration its taint, and the node is a g5/g6."""
    values = yaml.safe_load(GPU_VALUES.read_text())["predictor"]["gpu"]
    cluster = yaml.safe_load((ROOT / "cluster" / "eksctl-cluster.yaml").read_text())
    (group,) = [g for g in cluster["managedNodeGroups"] if g["name"] == "gpu"]
    assert group["instanceType"].split(".")[0] in ("g5", "g6")
    assert values["nodeSelector"].items() <= group["labels"].items()
    for taint in group["taints"]:
        assert any(t["key"] == taint["key"] and t["effect"] == taint["effect"] and t["operator"] == "Exists"
                   for t in values["tolerations"])
    # The other pods keep off: no other group carries the accelerator label.
    assert [g["name"] for g in cluster["managedNodeGroups"] if g.get("labels", {}).get("accelerator")] == ["gpu"]
    # The device plugin's DaemonSet runs only where its chart's default node affinity allows
    # (NVIDIA/k8s-device-plugin v0.20.0, deployments/helm/nvidia-device-plugin/values.yaml `affinity`:
    # an NFD PCI label or nvidia.com/gpu.present=true); with no NFD here, the group carries the label.
    assert group["labels"]["nvidia.com/gpu.present"] == "true"
    install = (ROOT / "cluster" / "install.sh").read_text()
    assert '"$NVIDIA_DEVICE_PLUGIN_VERSION"' in install and '"$DCGM_EXPORTER_VERSION"' in install


def test_knative_lets_the_gpu_profile_s_pod_fields_through():
    """Knative drops pod fields behind a feature flag that is off: knative/serving knative-v1.21.1,
    pkg/apis/serving/fieldmask.go ``PodSpecMask`` copies NodeSelector only when
    ``cfg.Features.PodSpecNodeSelector != config.Disabled`` and Tolerations only when PodSpecTolerations is,
    and pkg/apis/config/features.go ``defaultFeaturesConfig`` has both Disabled. Without the flags the GPU
    pods would never reach a GPU node."""
    serving = yaml.safe_load((ROOT / "cluster" / "knative-serving.yaml").read_text())
    features = serving["spec"]["config"]["features"]
    predictor = next(iter(predictors(render(GPU_VALUES)).values()))
    flags = {"nodeSelector": "kubernetes.podspec-nodeselector", "tolerations": "kubernetes.podspec-tolerations"}
    for field, flag in flags.items():
        assert field in predictor
        assert features[flag] == "enabled", flag

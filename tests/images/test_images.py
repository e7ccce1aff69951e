"""The images, run with the args, env, securityContext and limits the chart renders for them.

Each container runs as the pod would: UID 10001, read-only root filesystem with a tmpfs
/tmp, every capability dropped, no privilege escalation, the chart's memory and CPU
limits; Python is PID 1 and gets the SIGTERM itself.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import uuid

import httpx
import pytest

from harness.containers import ENGINE, Container, Spec, engine, predictor_container, rendered, transformer_container
from tests.images.conftest import require_image
from tests.integration.adversarial import V1, V2, v2_body
from tests.integration.servers import triton_grpc_infer

pytestmark = [pytest.mark.integration, pytest.mark.images]
SENTIMENT = ["NEGATIVE", "POSITIVE"]


def version_of(service: dict) -> str:
    args = service["spec"]["predictor"]["containers"][0]["args"]
    return next(a.split("=", 1)[1] for a in args if a.startswith("--model_version="))


def python_in(image: str, code: str) -> str:
    """``code`` run by the image's Python, as the image's user, offline."""
    done = engine("run", "--rm", "--network", "none", "--read-only", "--entrypoint", "python", image, "-c", code)
    return done.stdout.strip()


def test_v1_v2_and_grpc_through_the_transformer_carry_the_model_version(split):
    version = version_of(split.service)
    text = f"a wonderful, moving film {uuid.uuid4().hex}"
    with httpx.Client(base_url=split.transformer.url, timeout=30) as client:
        v1 = client.post(V1, json={"instances": [text]})
        assert v1.status_code == 200, v1.text
        assert "x-cache" not in v1.headers and "x-cache-hits" not in v1.headers  # the chart leaves them off
        assert v1.json()["predictions"][0]["label"] == "POSITIVE"
        v2 = client.post(V2, json=v2_body([text, "dull, tedious and far too long"]))
        assert v2.status_code == 200, v2.text
        answer = v2.json()
        assert answer["model_version"] == version
        labels = next(o for o in answer["outputs"] if o["name"] == "label")["data"]
        assert labels == ["POSITIVE", "NEGATIVE"]
    grpc = triton_grpc_infer(f"127.0.0.1:{split.transformer.grpc_port}", "sentiment", [text])
    assert grpc["label"] == ["POSITIVE"] and json.loads(grpc["labels_parameter"]) == SENTIMENT
    assert grpc["model_version"] == version
    metadata = httpx.get(f"{split.transformer.url}/v2/models/sentiment", timeout=10).json()
    assert metadata["parameters"]["model_version"] == version


def test_they_run_as_the_pod_does_and_write_nothing_outside_tmp(split):
    for container in (split.predictor, split.transformer):
        status = container.pid1_status()
        assert status["Uid"].split()[:2] == ["10001", "10001"], status["Uid"]
        assert status["CapEff"].strip() == "0" * 16, "capabilities left"
        assert status["NoNewPrivs"].strip() == "1"
        assert "python" in container.exec("cat", "/proc/1/cmdline")  # Python is PID 1: it gets the SIGTERM
        assert container.changed_paths() == [], "wrote outside /tmp"
        probe = subprocess.run([*ENGINE, "exec", container.name, "touch", "/opt/probe"], capture_output=True, text=True, check=False)
        assert probe.returncode != 0 and "Read-only file system" in probe.stderr + probe.stdout


def test_the_slim_predictor_holds_no_torch_and_only_what_onnx_int8_reads(services):
    image = services["sentiment"]["spec"]["predictor"]["containers"][0]["image"]
    found = json.loads(python_in(image, (
        "import importlib.util as u, importlib.metadata as m, json, os\n"
        "def dist(n):\n"
        "    try: return m.version(n)\n"
        "    except m.PackageNotFoundError: return None\n"
        "files = sorted(os.path.relpath(os.path.join(d, f), '/opt/model') for d, _, fs in os.walk('/opt/model') "
        "for f in fs)\n"
        "print(json.dumps({'modules': {n: u.find_spec(n) is not None for n in ('torch', 'transformers', 'peft')},"
        " 'dists': {n: dist(n) for n in ('torch', 'transformers', 'peft', 'kubernetes', 'pandas', 'onnxruntime')},"
        " 'files': files}))")))
    assert found["modules"] == {"torch": False, "transformers": False, "peft": False}
    assert {name: v for name, v in found["dists"].items() if v} == {"onnxruntime": found["dists"]["onnxruntime"]}
    assert "onnx/model.int8.onnx" in found["files"] and "tokenizer.json" in found["files"]
    assert "config.json" in found["files"]
    assert not [f for f in found["files"] if f.endswith((".safetensors", ".bin")) or f == "onnx/model.onnx"]


def test_an_unbaked_model_fails_at_start_saying_how_to_bake_it(services, tiny_model_dir, tmp_path):
    """A storageUri model without ONNX graphs: the slim image exits with the bake command, not a torch traceback."""
    downloaded = shutil.copytree(tiny_model_dir, tmp_path / "mnt-models")  # as the storage initializer leaves it:
    for path in [downloaded, *downloaded.rglob("*")]:  # readable by the serving user
        path.chmod(0o755 if path.is_dir() else 0o644)
    service = rendered("models.sentiment.storageUri=s3://models/sentiment-0.2.0")["sentiment"]
    component = service["spec"]["predictor"]
    assert "--model_dir=/mnt/models" in component["containers"][0]["args"]
    container = predictor_container(component, mounts=[f"{downloaded}:/mnt/models:ro"])
    try:
        container.run()
        assert container.wait_exit(timeout_s=120) != 0
        log = container.logs()
        assert "python -m modelbuild.bake --model_dir /mnt/models --out" in log, log[-2000:]
        assert "Traceback" not in log and "No module named" not in log, log[-2000:]
    finally:
        container.remove()


def test_the_emotion_image_serves_its_model(services):
    service = services["emotion"]
    require_image(service["spec"]["predictor"]["containers"][0]["image"])
    container = predictor_container(service["spec"]["predictor"])
    try:
        container.run().wait_ready()
        answer = httpx.post(f"{container.url}/v2/models/emotion/infer", json=v2_body(["I am so happy today"]),
                            timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == version_of(service)
        scores = next(o for o in answer.json()["outputs"] if o["name"] == "scores")
        assert "joy" in json.loads(scores["parameters"]["labels"])
    finally:
        container.remove()


def test_the_torch_variant_serves_backend_torch(services):
    service = services["sentiment"]
    component = json.loads(json.dumps(service["spec"]["predictor"]))
    container = component["containers"][0]
    container["image"] = require_image(f"{container['image']}-torch")
    run = predictor_container(component, "--backend=torch")  # appended: it wins over the chart's onnx-int8
    try:
        run.run().wait_ready()
        answer = httpx.post(f"{run.url}{V1}", json={"instances": ["a wonderful, moving film"]}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"][0]["label"] == "POSITIVE"
        assert "torch" in httpx.get(f"{run.url}/metrics", timeout=10).text
    finally:
        run.remove()


def sigterm_under_load(target: Container, path: str, body_for) -> None:
    """Load from 4 clients and one 100-text request; SIGTERM; every request sent before readiness flipped is answered.

    The clients stop sending once readiness answers 503, as Knative's proxies do; the
    container must answer everything it has and exit 0 within its drain plus grace.
    """
    results: list[tuple[float, float, object]] = []
    flipped, stop = threading.Event(), threading.Event()

    def load() -> None:
        with httpx.Client(base_url=target.url, timeout=30) as client:
            while not stop.is_set() and not flipped.is_set():
                sent = time.monotonic()
                try:
                    status = client.post(path, json=body_for()).status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                results.append((sent, time.monotonic(), status))

    def watch() -> None:
        with httpx.Client(base_url=target.url, timeout=2) as client:
            while not stop.is_set():
                try:
                    if client.get("/v2/health/ready").status_code == 503:
                        flipped.set()
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.02)

    def heavy() -> None:  # 100 new texts: far longer than one, so certainly in flight when the signal comes
        with httpx.Client(base_url=target.url, timeout=60) as client:
            sent = time.monotonic()
            response = client.post(path, json={"instances": [f"heavy {i} {uuid.uuid4().hex}" for i in range(100)]})
            results.append((sent, time.monotonic(), response.status_code))

    threads = [threading.Thread(target=load) for _ in range(4)] + [threading.Thread(target=watch)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(2)
        threads.append(threading.Thread(target=heavy))
        threads[-1].start()
        time.sleep(0.2)
        terminated_at = time.monotonic()
        target.signal("TERM")
        assert flipped.wait(timeout=15), "readiness never flipped to 503 after SIGTERM"
        exit_code = target.wait_exit(timeout_s=60)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert exit_code == 0, target.logs()[-3000:]
    assert [r for r in results if r[2] != 200] == [], [r for r in results if r[2] != 200][:5]
    in_flight = [r for r in results if r[0] < terminated_at < r[1]]
    assert in_flight, "no request was in flight at SIGTERM"
    log = target.logs()
    for sign in ("Traceback", "Unclosed client session", "Unclosed connector", "Task was destroyed"):
        assert sign not in log, log[-3000:]


@pytest.mark.parametrize("component", ["predictor", "transformer"])
def test_sigterm_under_load_answers_every_request(services, redis, component):
    service = services["sentiment"]
    predictor = predictor_container(service["spec"]["predictor"])
    transformer = None
    try:
        predictor.run().wait_ready()
        target = predictor
        if component == "transformer":
            transformer = transformer_container(service["spec"]["transformer"], redis.url,
                                                f"127.0.0.1:{predictor.http_port}")
            target = transformer.run()
            target.wait_ready()
        sigterm_under_load(target, V1, lambda: {"instances": [f"drain {uuid.uuid4().hex}", "a fine film"]})
    finally:
        for container in (transformer, predictor):
            if container:
                container.remove()


def test_collocated_pod_answers_once_both_containers_are_ready(services, redis):
    """transformer.collocated: one pod; its transformer calls localhost and is ready only once the model is."""
    service = rendered("transformer.collocated=true")["sentiment"]
    component = service["spec"]["predictor"]
    assert "transformer" not in service["spec"]
    predictor = predictor_container(component, container="kserve-container")
    # The pod's network is the host's here: the model's port is a free one, not the chart's 8085.
    transformer = transformer_container(component, redis.url, f"localhost:{predictor.http_port}",
                                        container="transformer-container")
    assert "--enable_predictor_health_check" in transformer.spec.args
    try:
        transformer.run()
        transformer.wait_ready(path="/v2/health/live")
        assert httpx.get(f"{transformer.url}/v2/health/ready", timeout=5).status_code != 200  # the model is not up
        predictor.run().wait_ready()
        transformer.wait_ready()
        answer = httpx.post(f"{transformer.url}{V2}", json=v2_body([f"a moving film {uuid.uuid4().hex}"]), timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == version_of(service)
    finally:
        transformer.remove()
        predictor.remove()


def test_spec_mirrors_the_pod_security_context():
    """The engine flags come from the rendered securityContext, volumes and limits (not retyped here)."""
    service = rendered()["sentiment"]
    flags = Spec.of(service["spec"]["predictor"]).flags
    assert flags[:2] == ["--user", "10001"] and "--read-only" in flags and "--cap-drop=ALL" in flags
    assert "no-new-privileges" in flags and "/tmp:rw,size=256m,mode=1777" in flags
    assert flags[flags.index("--memory") + 1] == "2g" and flags[flags.index("--cpus") + 1] == "2"

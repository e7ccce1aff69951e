"""The GPU backend's code on a CPU, through the real predictor: same labels as ONNX, ``auto``'s fallback, the
start-up error.

``torch-cuda`` is ``TorchBackend`` with ``device="cuda"`` and bf16 weights; ``--backend torch``
is the same class with ``device="cpu"``, and ``--torch_dtype bfloat16`` gives it the GPU's
numerics. Served side by side with ``--backend onnx`` (the fp32 graph of the same weights)
on the bundled models' held-out rows (the model cards' test slices), they must answer the
same label on at least 99% of them. (Against onnx-int8 fp32 torch agrees on 98.3-98.9%:
that gap is int8's, bounded by test_backends.py.) The figures on an H100 come from
bench/gpu.py (docs/gpu.md).
"""

import subprocess
import sys

import pytest

from predictor.devices import visible_gpu
from tests.conftest import SHARED
from tests.integration.servers import HTTP, ROOT, SERVER_ENV, ServerProcess
from tests.integration.test_backends import validation_set
from tests.integration.test_bundled_models import predict

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (SHARED / "data").is_dir(), reason=f"{SHARED}/data is absent: the labelled data lives there"),
    pytest.mark.skipif(visible_gpu().name is not None, reason="a GPU is visible: auto would pick it"),
]

AGREEMENT = 0.99
# bf16 on this AVX2 CPU is emulated (~7x fp32's time): a slice of the rows keeps the test short.
BF16_ROWS = 200


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    servers = {}

    def start(name: str, *flags: str) -> ServerProcess:
        key = (name, flags)
        if key not in servers:
            log = tmp_path_factory.mktemp(name) / "server.log"
            # A 100-text request through emulated bf16 on a busy 2-core machine can take tens of seconds.
            args = ["--model_name", name, "--request_timeout_s", "600", *flags]
            servers[key] = ServerProcess("predictor", args, log).start(ready_timeout_s=240)
        return servers[key]

    yield start
    for server in servers.values():
        server.stop()


def agreement(a: list[str], b: list[str]) -> float:
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


@pytest.mark.parametrize(("name", "dtype", "rows"), [
    ("sentiment", "float32", None), ("emotion", "float32", None), ("sentiment", "bfloat16", BF16_ROWS),
    ("emotion", "bfloat16", BF16_ROWS)])
def test_the_gpu_model_code_on_cpu_answers_the_labels_onnx_does(serve, name, dtype, rows):
    texts = [example.text for example in validation_set(name)][:rows]
    onnx = predict(serve(name, "--backend", "onnx"), name, texts)
    torch = predict(serve(name, "--backend", "torch", "--torch_dtype", dtype), name, texts)
    measured = agreement(torch, onnx)
    print(f"{name}: torch {dtype} on cpu vs onnx fp32: {measured:.4f} of {len(texts)} rows agree")
    assert measured >= AGREEMENT, (name, dtype, measured)


def test_auto_without_a_gpu_serves_onnx_int8_and_says_so(serve):
    server = serve("sentiment", "--backend", "auto")
    parameters = HTTP.get(f"{server.url}/v2/models/sentiment", timeout=10).json()["parameters"]
    assert (parameters["backend"], parameters["device"], parameters["max_batch_size"]) == ("onnx-int8", "cpu", 32)
    assert "--backend auto: no GPU" in server.log()


def test_torch_dtype_shows_in_metadata_as_the_backend_that_ran(serve):
    server = serve("sentiment", "--backend", "torch", "--torch_dtype", "bfloat16")
    parameters = HTTP.get(f"{server.url}/v2/models/sentiment", timeout=10).json()["parameters"]
    assert (parameters["backend"], parameters["device"]) == ("torch", "cpu")


def test_torch_cuda_without_a_gpu_exits_with_one_line_not_a_traceback():
    done = subprocess.run([sys.executable, "-m", "predictor", "--model_name", "sentiment", "--backend", "torch-cuda"],
                          cwd=ROOT, env={**SERVER_ENV, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0
    assert "predictor: --backend torch-cuda needs a CUDA GPU and none is visible" in done.stderr
    assert "--backend auto" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout

"""Backend selection (predictor/devices.py): ``auto``, the GPU check at start-up, the batch sizes each backend gets.

This machine has no GPU (CI never has one): ``visible_gpu`` is asked for real where the
answer is "none"; the GPU-present cases pass a stand-in for it, since no test here can
make a GPU appear.
"""

import pytest

from predictor.backends import AUTO_CPU, BACKENDS, CPU_BACKENDS
from predictor.classifier import TextClassifier, _fewest_passes
from predictor.devices import DeviceError, Gpu, batch_limits, choose_backend, visible_gpu

H100 = Gpu("NVIDIA H100 80GB HBM3")
NONE = Gpu(None, "torch 2.13.0+cpu is a CPU-only build")
no_gpu_here = pytest.mark.skipif(visible_gpu().name is not None, reason="this machine has a GPU")


@no_gpu_here
def test_auto_without_a_gpu_is_onnx_int8_and_says_why():
    choice = choose_backend("auto")
    assert (choice.backend, choice.device) == (AUTO_CPU, "cpu") == ("onnx-int8", "cpu")
    assert "no GPU" in choice.reason and visible_gpu().why_not in choice.reason


def test_auto_with_a_gpu_is_torch_cuda_on_it():
    choice = choose_backend("auto", gpu=lambda: H100)
    assert (choice.backend, choice.device) == ("torch-cuda", H100.name)
    assert H100.name in choice.reason


@no_gpu_here
def test_torch_cuda_without_a_gpu_is_a_clear_error_naming_the_way_out():
    with pytest.raises(DeviceError) as raised:
        choose_backend("torch-cuda")
    message = str(raised.value)
    assert "needs a CUDA GPU" in message and "--backend auto" in message
    assert visible_gpu().why_not in message  # why: CPU build of torch, no device, or no torch at all


def test_torch_cuda_with_a_gpu_runs_there():
    assert choose_backend("torch-cuda", gpu=lambda: H100).device == H100.name


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_cpu_backends_never_ask_for_a_gpu(backend):
    def no_question():
        raise AssertionError("a CPU backend looked for a GPU")

    assert choose_backend(backend, gpu=no_question).backend == backend


@pytest.mark.parametrize(("backend", "dtype"), [("onnx-int8", "bfloat16"), ("onnx", "float16"),
                                                ("torch-int8", "bfloat16")])
def test_a_dtype_the_backend_cannot_take_is_refused_at_start(backend, dtype):
    with pytest.raises(DeviceError, match="--torch_dtype"):
        choose_backend(backend, dtype, gpu=lambda: NONE)


def test_auto_with_a_torch_dtype_falls_back_to_an_onnx_graph_only_with_the_dtype_left_auto():
    with pytest.raises(DeviceError, match="--torch_dtype"):  # a bf16 request must not silently become int8 ONNX
        choose_backend("auto", "bfloat16", gpu=lambda: NONE)
    assert choose_backend("auto", "bfloat16", gpu=lambda: H100).backend == "torch-cuda"


def test_a_gpu_backend_batches_hundreds_of_texts_a_cpu_tens():
    gpu, cpu = batch_limits("torch-cuda", None, None), batch_limits("onnx-int8", None, None)
    assert (cpu.max_batch_size, cpu.max_batch_tokens) == (32, 16384)
    assert gpu.max_batch_size >= 256 and gpu.max_batch_tokens >= 256 * 128
    assert all(batch_limits(name, None, None) == cpu for name in CPU_BACKENDS)


def test_the_settings_win_over_the_backend_defaults():
    assert batch_limits("torch-cuda", 64, 8192) == batch_limits("onnx-int8", 64, 8192)
    assert batch_limits("torch-cuda", 64, None).max_batch_tokens == BACKENDS["torch-cuda"].max_batch_tokens


def test_the_gpu_planner_takes_the_fewest_passes_under_the_token_budget():
    lengths = [10, 12, 12, 30, 31, 200, 8]
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    chunks = _fewest_passes(order, lengths, max_batch_tokens=160)
    assert sorted(i for chunk in chunks for i in chunk) == list(range(len(lengths)))
    for chunk in chunks:
        assert len(chunk) == 1 or len(chunk) * max(lengths[i] for i in chunk) <= 160
    assert len(chunks) == 3  # [8 10 12 12 30] (5 x 30 = 150), [31], [200] alone (over the budget)
    assert _fewest_passes(order, lengths, max_batch_tokens=10_000) == [order]


def test_only_a_gpu_backend_plans_fewest_passes():
    assert TextClassifier.fewest_passes is False  # the CPU default: the cost-based split (test_classifier.py)
    assert [name for name, kind in BACKENDS.items() if kind.device != "cpu"] == ["torch-cuda"]

"""The servers a user would pick instead of ours, each installed in a virtualenv of its own.

Their pins conflict with ours (Infinity wants numpy < 2, MLServer an older FastAPI and
TensorFlow), so each peer lives under ``.cache/peers/<venv>/`` (ignored by git, never
``.venv``), installed from its lock file beside this module: ``torch==2.13.0`` first,
then the lock under a constraints file that holds torch there, so that no resolver
step can swap in a newer (multi-GB CUDA) build. The lock files were frozen from the
first install that worked; the fixes a peer needed to run at all are in BENCHMARKS.md.

Each ``Peer`` says how to lay out the model directory for it (the same full-size
DistilBERT, in the peer's own artifacts: Infinity's optimum engine reads an ONNX file
that optimum's quantizer wrote), how to start it, where it reports ready, and what
body its clients send (bench/loadgen.py ``--payload``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.processes import ROOT, ServerProcess, free_port

HERE = Path(__file__).resolve().parent
VENVS = ROOT / ".cache" / "peers"
TORCH = "torch==2.13.0"


@dataclass(frozen=True)
class Peer:
    name: str  # the column's name
    venv: str  # .cache/peers/<venv>, from bench/peers/<venv>.lock
    describe: str  # the configuration, for the table
    prepare: Callable[[Peer, Path, Path], Path]  # (peer, our model dir, its work dir) -> what it serves
    args: Callable[[Path, int], list[str]]  # (served path, port) -> arguments after ``python -m <module>``
    module: str
    ready_path: str
    infer_path: str
    payload: str  # bench/loadgen.py --payload

    @property
    def python(self) -> Path:
        return VENVS / self.venv / "bin" / "python"

    def env(self, work: Path) -> dict:
        # HF_HOME inside the work dir: Infinity caches its optimized graph there, and no peer
        # may reach for a model hub (there is none here) or the user's own cache.
        return {"PATH": f"{self.python.parent}:{os.environ.get('PATH', '')}", "HOME": os.environ.get("HOME", "/root"),
                "HF_HOME": str(work / "hf"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false", "INFINITY_ANONYMOUS_USAGE_STATS": "0", "DO_NOT_TRACK": "1",
                "TF_CPP_MIN_LOG_LEVEL": "2"}

    def server(self, served: Path, work: Path, log: Path) -> ServerProcess:
        # Started inside what it serves: Infinity finds its ONNX file only by a path relative to
        # --model-id (see _infinity_args), and MLServer reads settings.json from its repository.
        return PeerProcess(self, served, work, log)


class PeerProcess(ServerProcess):
    """A peer from its own venv, in its own cwd and env, with its own port flags (not ours)."""

    def __init__(self, peer: Peer, served: Path, work: Path, log: Path):
        super().__init__(peer.module, [], log, ready_path=peer.ready_path, grpc=False, sample_rss=True)
        self.peer, self.served = peer, served
        self.cwd, self.env = served, peer.env(work)

    @property
    def command(self) -> list[str]:
        return [str(self.peer.python), "-m", self.peer.module, *self.peer.args(self.served, self.http_port)]


def install(venv: str) -> Path:
    """The peer's virtualenv, created or brought up to its lock file (a stamp holds the lock's hash)."""
    lock = HERE / f"{venv}.lock"
    home = VENVS / venv
    stamp = home / ".installed"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text() == digest:
        return home
    print(f"installing peer {venv} into {home} (once; a few minutes)", flush=True)
    VENVS.mkdir(parents=True, exist_ok=True)
    constraints = VENVS / "torch.constraints"
    constraints.write_text(TORCH + "\n")
    pip = [str(home / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)
    subprocess.run([*pip, TORCH], check=True)  # first, by exact version: the lock must never move it
    subprocess.run([*pip, "-c", str(constraints), "-r", str(lock)], check=True)
    stamp.write_text(digest)
    return home


def _run(peer: Peer, work: Path, *command: str) -> None:
    done = subprocess.run([str(peer.python), *command], env=peer.env(work), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{peer.name}: {' '.join(command)} failed:\n{done.stderr[-3000:]}")


def _copy_model(model_dir: Path, out: Path) -> Path:
    """Our model directory without our ONNX graphs (Infinity would pick any *.onnx it finds)."""
    if not out.is_dir():
        shutil.copytree(model_dir, out, ignore=shutil.ignore_patterns("onnx"))
    return out


def prepare_infinity_optimum(peer: Peer, model_dir: Path, work: Path) -> Path:
    """Optimum's ONNX export, optimum's graph optimizer (-O2: the transformer fusions, exact GELU, as
    ours), then dynamic int8 quantization: Infinity's best CPU graph.

    Infinity's optimum engine prefers an ONNX file whose name says "quantize" and would
    optimize it itself (ORTOptimizer, level 99) on its first start, but with the optimum that
    pip resolves that step fails (BENCHMARKS.md) and Infinity serves the file as it is: so the
    optimizer runs here, before quantization, with optimum's own CLI.
    """
    out = work / "model"
    if (out / "model_optimized_quantized.onnx").is_file():
        return out
    exported, optimized = work / "exported", work / "optimized"
    _run(peer, work, "-m", "optimum.exporters.onnx", "--model", str(_copy_model(model_dir, work / "hf-model")),
         "--task", "text-classification", str(exported))
    _run(peer, work, "-m", "optimum.commands.optimum_cli", "onnxruntime", "optimize", "-O2",
         "--onnx_model", str(exported), "-o", str(optimized))
    # ONNX Runtime's dynamic int8 quantizer, which optimum's `quantize --avx512_vnni` wraps, called
    # directly: optimum's CLI cannot pass DefaultTensorType, without which it stops on the fused graph
    # ("Unable to find data type for weight_name=...out_lin/MatMul_output_0"). The same settings as
    # ours (modelbuild/export.py): int8 weights per channel.
    out.mkdir(parents=True, exist_ok=True)
    _run(peer, work, "-c", "import sys, onnx; from onnxruntime.quantization import QuantType, quantize_dynamic; "
         "quantize_dynamic(sys.argv[1], sys.argv[2], weight_type=QuantType.QInt8, per_channel=True, "
         "extra_options={'DefaultTensorType': onnx.TensorProto.FLOAT})",
         str(optimized / "model_optimized.onnx"), str(out / "model_optimized_quantized.onnx"))
    for extra in [*exported.iterdir(), *optimized.iterdir()]:  # config and tokenizer files next to the quantized graph
        if extra.suffix != ".onnx" and not (out / extra.name).exists():
            shutil.copy(extra, out / extra.name)
    return out


def prepare_plain(peer: Peer, model_dir: Path, work: Path) -> Path:
    return _copy_model(model_dir, work / "model")


def prepare_mlserver(peer: Peer, model_dir: Path, work: Path) -> Path:
    """A model repository: model-settings.json for the HuggingFace runtime, adaptive batching on."""
    repo = work / "repo"
    (repo / "bench").mkdir(parents=True, exist_ok=True)
    settings = {
        "name": "bench", "implementation": "mlserver_huggingface.HuggingFaceRuntime",
        # Adaptive batching (MLServer's docs: max_batch_size and max_batch_time in seconds).
        "max_batch_size": int(os.environ.get("MLSERVER_BENCH_BATCH", "16")), "max_batch_time": 0.002,
        "parameters": {"extra": {"task": "text-classification", "pretrained_model": str(model_dir),
                                 "optimum_model": os.environ.get("MLSERVER_BENCH_OPTIMUM", "0") == "1"}},
    }
    (repo / "bench" / "model-settings.json").write_text(json.dumps(settings, indent=2))
    return repo


def _infinity_args(engine: str) -> Callable[[Path, int], list[str]]:
    def args(served: Path, port: int) -> list[str]:
        # "--model-id ." from inside the model directory: with an absolute local path, Infinity
        # 0.0.78 hands optimum-onnx the ONNX file's absolute path as its file_name, which
        # optimum-onnx rejects ("Could not find any ONNX files with target file name /abs/...,
        # only found: [model_quantized.onnx]"); relative to "." the two agree.
        # No warm-up for the optimum engine: its classifier runs the pipeline without truncation and
        # Infinity's warm-up text is 514 tokens, past DistilBERT's 512 positions, so the start fails
        # ("Non-zero status code returned while running Add node ... /distilbert/embeddings/Add").
        warmup = ["--no-model-warmup"] if engine == "optimum" else []
        return ["v2", "--model-id", ".", "--served-model-name", "bench", "--engine", engine, "--device", "cpu",
                "--port", str(port), "--host", "127.0.0.1", *warmup]
    return args


def _mlserver_args(served: Path, port: int) -> list[str]:
    (served / "settings.json").write_text(json.dumps({
        "http_port": port, "grpc_port": free_port(), "metrics_port": free_port(), "host": "127.0.0.1",
        "parallel_workers": int(os.environ.get("MLSERVER_BENCH_WORKERS", "1")),
    }))
    return ["start", str(served)]


PEERS = {
    "infinity-optimum": Peer("infinity-optimum", "infinity", "Infinity 0.0.78, optimum engine, optimum's -O2 "
                             "graph, dynamic int8 per channel", prepare_infinity_optimum, _infinity_args("optimum"),
                             "infinity_emb.cli", "/health", "/classify", "infinity"),
    "infinity-torch": Peer("infinity-torch", "infinity", "Infinity 0.0.78, torch engine (fp32)", prepare_plain,
                           _infinity_args("torch"), "infinity_emb.cli", "/health", "/classify", "infinity"),
    "mlserver": Peer("mlserver", "mlserver", "MLServer 1.7.1 + mlserver-huggingface 1.7.1, transformers "
                     "pipeline (PyTorch fp32), adaptive batching", prepare_mlserver, _mlserver_args, "mlserver.cli.main",
                     "/v2/health/ready", "/v2/models/bench/infer", "v2"),
}

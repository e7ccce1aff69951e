"""The OpenVINO backends: the same exported graph, compiled by OpenVINO's CPU plugin.

``openvino`` runs the fp32 graph (OpenVINO converts our fused ONNX file itself);
``openvino-int8`` runs a graph whose matrix products NNCF quantized to int8 ahead of
time (static: activation ranges calibrated once on sample texts, so no per-call
quantize step), which OpenVINO executes with AVX-512 VNNI (and AMX where the CPU has
it). The IR files live beside the ONNX ones (``predictor.export``) and are written at
build time or once into the cache; serving only reads them.

One infer request, reused: the batcher calls the backend from one thread at a time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OPENVINO_FILES = {"openvino": "model.ov.xml", "openvino-int8": "model.ov-int8.xml"}
CALIBRATION_TEXTS = 300  # NNCF's default subset size


class OpenVinoBackend:
    def __init__(self, path: Path, threads: int = 0):
        self.path, self.threads = path, threads
        self._open()

    def __getstate__(self) -> dict:  # KServe's --workers spawns processes: each compiles its own
        return {"path": self.path, "threads": self.threads}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._open()

    def _open(self) -> None:
        import openvino as ov

        config = {
            # One stream, latency hint: one batch at a time uses every core (the batcher's model).
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": "1",
            # fp32 where the graph is fp32: bf16 would change the answers by more than int8 does.
            "INFERENCE_PRECISION_HINT": "f32",
        }
        if self.threads > 0:
            config["INFERENCE_NUM_THREADS"] = self.threads
        self.compiled = ov.Core().compile_model(str(self.path), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.inputs = {port.get_any_name() for port in self.compiled.inputs}

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self.inputs:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        self.request.infer(feeds)
        return self.request.get_output_tensor(0).data.copy()  # the tensor's memory is reused by the next call


def export_openvino(onnx_fp32: Path, out_dir: Path, calibration: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """``model.ov.xml`` from the fused fp32 ONNX graph and ``model.ov-int8.xml`` quantized by NNCF."""
    import nncf
    import openvino as ov

    model = ov.convert_model(str(onnx_fp32))
    ov.save_model(model, str(out_dir / OPENVINO_FILES["openvino"]))
    names = [port.get_any_name() for port in model.inputs]

    def feed(sample: tuple[np.ndarray, np.ndarray]) -> dict:
        ids, mask = sample
        feeds = {"input_ids": ids, "attention_mask": mask}
        return {name: feeds.get(name, np.zeros_like(ids)) for name in names}

    quantized = nncf.quantize(model, nncf.Dataset(calibration, feed), model_type=nncf.ModelType.TRANSFORMER,
                              subset_size=len(calibration))
    ov.save_model(quantized, str(out_dir / OPENVINO_FILES["openvino-int8"]))

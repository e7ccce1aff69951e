"""Call a V2 gRPC server with tritonclient.grpc, in a process of its own.

tritonclient.grpc and kserve register the same ``inference.*`` protobuf symbols, so
they cannot be imported into one process (kserve/kserve#3099). Tests run this script
in a subprocess: ``python triton_grpc_call.py TARGET MODEL`` with a JSON list of texts
on stdin (``{"hex": "..."}`` items for raw bytes); it prints the outputs as JSON.
"""

import json
import sys

import numpy as np
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException


def main() -> None:
    target, model = sys.argv[1], sys.argv[2]
    items = [bytes.fromhex(t["hex"]) if isinstance(t, dict) else t.encode() for t in json.load(sys.stdin)]
    client = triton_grpc.InferenceServerClient(target)
    text = triton_grpc.InferInput("text", [len(items)], "BYTES")
    text.set_data_from_numpy(np.array(items, dtype=object))
    try:
        result = client.infer(model, [text])
    except InferenceServerException as exc:
        print(json.dumps({"status": str(exc.status()), "message": exc.message()}))
        return
    print(json.dumps({
        "label": [label.decode() for label in result.as_numpy("label")],
        "score": result.as_numpy("score").tolist(),
        "scores": result.as_numpy("scores").tolist(),
        "labels_parameter": result.get_output("scores").parameters["labels"].string_param,
        "model_ready": client.is_model_ready(model),
        "model_version": result.get_response().model_version,
    }))


if __name__ == "__main__":
    main()

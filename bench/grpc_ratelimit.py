"""What the IP-keyed gRPC rate limit's stream-unary handler costs per RPC: this checkout against another ref.

Two transformers, this checkout's and ``--before``'s (git archive), each with an IP-keyed
limit far above the load (``--rate_limit_rps 1e6``), answer ``--rpcs`` gRPC ``ModelInfer``
calls of one cached text (the hot path: Redis answers, the predictor is not called), one
after another on one channel, in alternating rounds (ABAB...) so that a busy machine's
drift falls on both. The figure is the ratio of the median round times (this checkout /
before); the seconds per RPC are given too. Real Redis, a real predictor (the tiny random
model).

    python -m bench.grpc_ratelimit --before main
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from harness.processes import ROOT, RedisProcess, ServerProcess, extract

MODEL = "bench"


def stub_for(target: str):
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    stub = pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(target))
    tensor = pb.ModelInferRequest.InferInputTensor(name="text", datatype="BYTES", shape=[1],
                                                   contents=pb.InferTensorContents(bytes_contents=[b"a cached text"]))
    request = pb.ModelInferRequest(model_name=MODEL, inputs=[tensor])
    return lambda: stub.ModelInfer(request, timeout=30)


def round_s(call, rpcs: int) -> float:
    started = time.perf_counter()
    for _ in range(rpcs):
        call()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default="main", help="the git ref to compare with")
    parser.add_argument("--rpcs", type=int, default=2000, help="RPCs per round")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per side")
    args = parser.parse_args()
    from harness.random_model import build_random_model

    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        model_dir = build_random_model(out / "tiny")
        old = extract(args.before, out / "before")
        cache = RedisProcess(out / "redis.log").start()
        predictor = ServerProcess("predictor", ["--model_name", MODEL, "--backend", "onnx", "--model_dir",
                                                str(model_dir), "--access_log", "false"], out / "predictor.log").start()
        flags = ["--model_name", MODEL, "--predictor_host", f"127.0.0.1:{predictor.http_port}", "--redis_url",
                 cache.url, "--access_log", "false", "--cache_timeout_ms", "2000", "--rate_limit_rps", "1e6"]
        sides = {name: ServerProcess("transformer", flags, out / f"{name}.log", root=root).start()
                 for name, root in (("before", old), ("after", ROOT))}
        try:
            calls = {name: stub_for(server.grpc_target) for name, server in sides.items()}
            for call in calls.values():
                round_s(call, 200)  # warm-up: the text cached, channels connected
            times: dict[str, list[float]] = {name: [] for name in sides}
            for _ in range(args.rounds):
                for name, call in calls.items():
                    times[name].append(round_s(call, args.rpcs))
        finally:
            for server in (*sides.values(), predictor):
                server.stop()
            cache.stop()
    before, after = (statistics.median(times[name]) for name in ("before", "after"))
    print(f"{args.rpcs} cached gRPC ModelInfer per round, {args.rounds} rounds a side, IP-keyed limit on: "
          f"{args.before} {before / args.rpcs * 1e6:.0f} us/RPC, this checkout {after / args.rpcs * 1e6:.0f} us/RPC, "
          f"ratio {after / before:.3f} (rounds: {args.before} {[round(t, 2) for t in times['before']]}, "
          f"this checkout {[round(t, 2) for t in times['after']]})")


if __name__ == "__main__":
    main()

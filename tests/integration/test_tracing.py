"""Traces across both real processes: the caller's W3C traceparent continues through the transformer into the
predictor, over REST and gRPC, and both export their spans over OTLP/HTTP to a receiver run here.

Also the timing headers (contract/timings.py) on both services and both protocols.
"""

from __future__ import annotations

import secrets

import grpc
import httpx
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

from contract import timings
from harness.otlp import OtlpReceiver
from tests.integration.servers import ServerProcess
from tests.integration.test_transformer import post_v1, transformer_for, unique

pytestmark = pytest.mark.integration
SERVER, CLIENT = 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind


def traceparent(sampled: bool = True) -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}", trace_id, span_id


@pytest.fixture
def traced(tiny_model_dir, redis, tmp_path, monkeypatch):
    """A receiver, and a predictor with a REST and a gRPC transformer in front, all three exporting to it."""
    with OtlpReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # export within a tenth of a second, not 5 s
        backend = ServerProcess("predictor", ["--model_name", "sentiment", "--model_dir", str(tiny_model_dir),
                                              "--backend", "onnx"], tmp_path / "predictor.log").start()
        rest = transformer_for(backend, redis, tmp_path / "rest.log").start()
        via_grpc = transformer_for(backend, redis, tmp_path / "grpc.log", protocol="grpc-v2").start()
        try:
            yield receiver, backend, rest, via_grpc
        finally:
            via_grpc.stop()
            rest.stop()
            backend.stop()


def by_name(spans, service: str, name: str):
    found = [span for span in spans if span.service == service and span.name == name]
    assert found, f"no {service} span {name!r} in {[(s.service, s.name) for s in spans]}"
    return found[0]


@pytest.mark.parametrize("hop", ["rest", "grpc"])
def test_one_trace_spans_both_services_with_the_parent_links_right(traced, hop):
    receiver, _, rest, via_grpc = traced
    front = rest if hop == "rest" else via_grpc
    unsampled, unsampled_id, _ = traceparent(sampled=False)
    assert post_v1(front, unique(2), traceparent=unsampled).status_code == 200  # the caller said: do not record
    header, trace_id, caller_span = traceparent()
    assert post_v1(front, unique(3), traceparent=header).status_code == 200

    transformer, predictor = "sentiment-transformer", "sentiment-predictor"
    back_name = "ModelInfer" if hop == "grpc" else "POST /v2/models/sentiment/infer"
    # Every span asserted on below: each process exports in batches, and the server spans end (and
    # leave) last, so waiting for only some of them once let a stressed run check a trace still arriving.
    spans = receiver.wait_for(trace_id, {
        (transformer, "POST /v1/models/sentiment:predict"), (transformer, "parse"), (transformer, "cache lookup"),
        (transformer, "predictor call"), (transformer, "cache write"),
        (predictor, back_name), (predictor, "parse"), (predictor, "batch wait"), (predictor, "inference")})
    front_span = next(s for s in spans if s.service == transformer and s.kind == SERVER)
    assert front_span.parent_span_id == caller_span  # continues the caller's trace
    for name in ("parse", "cache lookup", "predictor call", "cache write"):
        assert by_name(spans, transformer, name).parent_span_id == front_span.span_id
    assert by_name(spans, transformer, "cache lookup").attributes["cache.hits"] == 0
    call = by_name(spans, transformer, "predictor call")
    assert call.kind == CLIENT and call.attributes["texts"] == 3

    back_span = next(s for s in spans if s.service == predictor and s.kind == SERVER)
    assert back_span.parent_span_id == call.span_id  # the traceparent crossed the hop
    assert back_span.name == back_name
    for name in ("parse", "batch wait", "inference"):
        assert by_name(spans, predictor, name).parent_span_id == back_span.span_id
    inference = by_name(spans, predictor, "inference").attributes
    assert inference["request.texts"] == 3 and inference["batch.size"] >= 3
    assert inference["batch.tokens"] >= inference["request.tokens"] > 3
    assert {s.trace_id for s in spans} == {trace_id}
    assert not receiver.trace(unsampled_id)  # parent-based sampling: the unsampled caller left no spans


def grpc_infer(target: str, texts: list[str]):
    """One ModelInfer call; its response and initial metadata."""
    with grpc.insecure_channel(target) as channel:
        request = pb.ModelInferRequest(model_name="sentiment", inputs=[pb.ModelInferRequest.InferInputTensor(
            name="text", datatype="BYTES", shape=[len(texts)],
            contents=pb.InferTensorContents(bytes_contents=[t.encode() for t in texts]))])
        response, call = GRPCInferenceServiceStub(channel).ModelInfer.with_call(request, timeout=30)
        return response, dict(call.initial_metadata())


def test_timing_headers_on_both_services_and_both_protocols(traced):
    _, backend, rest, via_grpc = traced
    texts = unique(4)
    direct = post_v1(backend, texts).headers
    assert int(direct[timings.COMPUTE_TOKENS]) > 4 and int(direct[timings.COMPUTE_CHARACTERS]) == sum(map(len, texts))
    for name in (timings.TOTAL_TIME, timings.QUEUE_TIME, timings.INFERENCE_TIME, timings.TOKENIZATION_TIME):
        assert float(direct[name]) >= 0
    assert float(direct[timings.INFERENCE_TIME]) > 0

    miss = post_v1(rest, texts).headers  # the direct call cached nothing: all four are misses
    assert miss["x-cache"] == "miss" and miss[timings.CACHE_HITS] == "0"
    assert int(miss[timings.COMPUTE_TOKENS]) > 4 and float(miss[timings.INFERENCE_TIME]) > 0
    hit = post_v1(rest, texts[:2]).headers
    assert hit["x-cache"] == "hit" and hit[timings.CACHE_HITS] == "2"
    # nothing computed for it: none of the predictor's headers (absent, not zero)
    assert not {name for name in timings.PREDICTOR_HEADERS if name in hit}
    assert float(hit[timings.TOTAL_TIME]) > 0

    fresh = unique(3)
    _, metadata = grpc_infer(via_grpc.grpc_target, fresh)  # gRPC in, gRPC to the predictor: metadata both ways
    assert metadata["x-cache"] == "miss" and int(metadata[timings.COMPUTE_TOKENS]) > 3
    assert float(metadata[timings.INFERENCE_TIME]) > 0 and float(metadata[timings.TOTAL_TIME]) > 0
    _, metadata = grpc_infer(backend.grpc_target, fresh)
    assert int(metadata[timings.COMPUTE_TOKENS]) > 3 and float(metadata[timings.QUEUE_TIME]) >= 0
    reply = httpx.post(f"{rest.url}/v1/models/sentiment:predict", json={"instances": fresh}, timeout=30)
    assert reply.headers["x-cache"] == "hit" and reply.headers[timings.CACHE_HITS] == "3"  # same Redis

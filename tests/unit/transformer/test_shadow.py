"""Shadow scoring: labels compared by name, never a wait or an error for the caller, drops counted when saturated."""

import asyncio

import numpy as np

from contract.errors import ServiceError
from contract.scores import Scores
from transformer.shadow import ShadowScorer, compare

LABELS = ["NEGATIVE", "POSITIVE"]


def test_labels_are_compared_by_name_not_position():
    primary = np.array([[0.9, 0.1], [0.3, 0.7]], dtype=np.float32)
    same_model_swapped_order = primary[:, ::-1]
    agree, difference = compare(LABELS, primary, LABELS[::-1], same_model_swapped_order)
    assert agree.tolist() == [True, True] and np.allclose(difference, 0)
    inverted = primary  # same scores, id2label swapped: every top label flips
    agree, difference = compare(LABELS, primary, LABELS[::-1], inverted)
    assert agree.tolist() == [False, False] and np.allclose(difference, [0.8, 0.4])
    agree, difference = compare(LABELS, primary, ["joy", "anger"], primary)  # other labels never agree
    assert agree.tolist() == [False, False] and np.allclose(difference, [0.9, 0.7])


class SlowClient:
    """A real coroutine that takes its time, answering like a predictor (or failing like one)."""

    def __init__(self, delay_s: float, error: str | None = None):
        self.delay_s, self.error, self.calls = delay_s, error, 0

    async def infer(self, model_name, texts, request_id, parameters=None, client=None):
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        if self.error:
            raise ServiceError(self.error, "shadow down")
        assert parameters == {"truncation": "head"}  # the primary's truncation, never the shadow's own default
        return Scores(np.tile([[0.2, 0.8]], (len(texts), 1)).astype(np.float32), LABELS, "shadow-v"), {}

    async def close(self):
        pass


def counted(outcome: str) -> float:
    from transformer.shadow import SHADOW_TEXTS

    return SHADOW_TEXTS.labels("unit-shadow", outcome)._value.get()


async def test_submit_never_waits_and_drops_when_saturated():
    client = SlowClient(0.2)
    scorer = ShadowScorer("unit-shadow", client, percent=100, max_in_flight=2, seed=1)
    primary = Scores(np.array([[0.9, 0.1]], dtype=np.float32), LABELS, "primary-v")
    dropped_before, compared_before = counted("dropped"), counted("compared")
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(5):
        scorer.submit(["a text"], primary, "rid")
    assert loop.time() - started < 0.05  # submit only starts tasks
    assert client.calls <= 2 and counted("dropped") - dropped_before == 3
    await asyncio.gather(*scorer._tasks)
    assert counted("compared") - compared_before == 2
    await scorer.close()


async def test_a_failing_shadow_is_counted_and_swallowed():
    scorer = ShadowScorer("unit-shadow", SlowClient(0, error="timeout"), percent=100, max_in_flight=4)
    before = counted("timeout")
    scorer.submit(["x", "y"], Scores(np.array([[0.9, 0.1], [0.1, 0.9]], np.float32), LABELS, "p"), "rid")
    await asyncio.gather(*scorer._tasks)  # nothing raised
    assert counted("timeout") - before == 2


def test_percent_samples_texts():
    scorer = ShadowScorer("unit-shadow", SlowClient(0), percent=0)
    scorer.submit(["x"] * 100, Scores(np.zeros((100, 2), np.float32), LABELS, "p"), "rid")  # no loop needed: none chosen
    assert not scorer._tasks

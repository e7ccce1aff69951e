"""SessionPool (predictor/backends.py): several copies of a backend for several inference threads."""

import threading

import numpy as np

from predictor.backends import SessionPool


class Copy:
    """A backend copy that records its callers and fails if two run it at once."""

    def __init__(self, name: str, barrier: threading.Barrier | None = None):
        self.name, self.barrier, self.busy, self.calls = name, barrier, False, 0

    def __call__(self, input_ids, attention_mask):
        assert not self.busy, f"{self.name} ran two batches at once"
        self.busy = True
        self.calls += 1
        try:
            if self.barrier is not None:
                self.barrier.wait()  # both calls are inside the pool at once
            return np.full((len(input_ids), 2), float(self.calls), dtype=np.float32)
        finally:
            self.busy = False


def feeds():
    return np.zeros((1, 4), dtype=np.int64), np.ones((1, 4), dtype=np.int64)


def test_calls_in_a_row_take_each_copy_in_turn():
    copies = [Copy("a"), Copy("b"), Copy("c")]
    pool = SessionPool(copies)
    for _ in range(3):  # what the predictor's warm-up does: one call per session
        pool(*feeds())
    assert [copy.calls for copy in copies] == [1, 1, 1]


def test_calls_at_once_get_different_copies():
    barrier = threading.Barrier(2, timeout=10)
    copies = [Copy("a", barrier), Copy("b", barrier)]
    pool = SessionPool(copies)
    errors: list[BaseException] = []

    def call():
        try:
            pool(*feeds())
        except BaseException as exc:  # noqa: BLE001  reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert [copy.calls for copy in copies] == [1, 1]

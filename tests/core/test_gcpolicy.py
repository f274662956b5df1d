# tests: xmppd/gcpolicy.py
import gc

from xmppd import gcpolicy


def test_settle_freezes_the_heap_and_raises_the_thresholds() -> None:
    before = gc.get_threshold()
    try:
        assert gcpolicy.settle() > 0
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == gcpolicy.THRESHOLDS
        garbage: list[object] = []
        garbage.append(garbage)             # a cycle made after settle() is still collected
        del garbage
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)

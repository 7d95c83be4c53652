"""Row 3's breakdown wraps its pieces for one run only and counts each call."""

from __future__ import annotations

from bench.breakdown import PIECES, wrapped
from custom_components.iotee.core import store

from .core.test_store import make_record


def test_pieces_are_wrapped_for_the_run_only_and_every_call_counts() -> None:
    originals = {piece.label: piece.owner.__dict__[piece.name] for piece in PIECES}
    costs: dict[str, list[int]] = {}
    label = "building a store row (`record_row`; insert and updates)"
    with wrapped(costs):
        assert store.record_row is not originals[label]
        row = store.record_row(make_record("c1"))
        store.record_row(make_record("c1"))
    assert row[0] == "c1"  # the wrapped function still returns what it did
    assert costs[label][0] == 2
    assert {piece.label: piece.owner.__dict__[piece.name] for piece in PIECES} == originals


def test_pieces_are_restored_when_the_run_fails() -> None:
    originals = {piece.label: piece.owner.__dict__[piece.name] for piece in PIECES}
    try:
        with wrapped({}):
            raise RuntimeError("the run failed")
    except RuntimeError:
        pass
    assert {piece.label: piece.owner.__dict__[piece.name] for piece in PIECES} == originals

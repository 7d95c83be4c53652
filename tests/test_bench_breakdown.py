"""Row 3's breakdown wraps its pieces for one run only and counts each call."""

from __future__ import annotations

from datetime import timedelta

from bench.breakdown import PIECES, wrapped
from custom_components.iotee.core import store
from custom_components.iotee.core.model import CommandRecord, utcnow


def _record() -> CommandRecord:
    now = utcnow()
    return CommandRecord(
        command_id="c1",
        hardware_id="dev1",
        device_type="wlte_relay",
        command="ON",
        topic="wlte/dev1/relay/1/set",
        payload="{}",
        created_at=now,
        deadline=now + timedelta(seconds=5),
    )


def test_pieces_are_wrapped_for_the_run_only_and_every_call_counts() -> None:
    originals = {piece.label: piece.owner.__dict__[piece.name] for piece in PIECES}
    costs: dict[str, list[int]] = {}
    label = "building a store row (`record_row`; insert and updates)"
    with wrapped(costs):
        assert store.record_row is not originals[label]
        row = store.record_row(_record())
        store.record_row(_record())
    assert row[0] == "c1"  # the wrapped function still returns what it did
    assert costs[label][0] == 2
    assert costs[label][1] >= 0
    assert {piece.label: piece.owner.__dict__[piece.name] for piece in PIECES} == originals


def test_pieces_are_restored_when_the_run_fails() -> None:
    originals = {piece.label: piece.owner.__dict__[piece.name] for piece in PIECES}
    try:
        with wrapped({}):
            raise RuntimeError("the run failed")
    except RuntimeError:
        pass
    assert {piece.label: piece.owner.__dict__[piece.name] for piece in PIECES} == originals

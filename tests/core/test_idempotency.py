"""Idempotency-Key helpers."""

from __future__ import annotations

import asyncio
import json
from types import MappingProxyType

import pytest

from custom_components.iotee.core.idempotency import (
    KEY_PATTERN,
    ClaimReleasedError,
    InFlight,
    body_hash,
    scope_of,
    valid_key,
)

# --- keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["a", "Z", "0", "-", "_", "abc-DEF_123", "x" * 128, "550e8400-e29b-41d4-a716-446655440000"],
)
def test_valid_keys(key: str) -> None:
    assert valid_key(key) is True
    assert KEY_PATTERN.fullmatch(key)


@pytest.mark.parametrize(
    "key",
    [
        None,
        "",
        "x" * 129,
        "a b",
        "a.b",
        "a/b",
        "a:b",
        "key\n",
        "\nkey",
        "ключ",
        "é",
        "１２３",  # noqa: RUF001 - full-width digits are what this rejects
        "٣",  # Arabic-Indic digit: a Unicode digit, not an ASCII one
        '"',
        "a,b",
    ],
)
def test_invalid_keys(key: str | None) -> None:
    assert valid_key(key) is False


def test_valid_key_rejects_non_strings() -> None:
    assert valid_key(123) is False  # type: ignore[arg-type]
    assert valid_key(b"abc") is False  # type: ignore[arg-type]


# --- scopes ----------------------------------------------------------------------------------


def test_scope_round_trips() -> None:
    scope = scope_of("user:1", "/api/iotee/relay", "key-1")
    assert json.loads(scope) == ["user:1", "/api/iotee/relay", "key-1"]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("a", "b", "c"), ("a", "b", "d")),
        (("a", "b", "c"), ("a", "x", "c")),
        (("a", "b", "c"), ("x", "b", "c")),
        # Separator tricks: a naive "caller|path|key" or "caller:path:key" would collide here.
        (("a|b", "c", "d"), ("a", "b|c", "d")),
        (("a:b", "c", "d"), ("a", "b:c", "d")),
        (("a", "b/c", "d"), ("a/b", "c", "d")),
        (('a","b', "c", "d"), ("a", 'b","c', "d")),
        (("a\\", "b", "c"), ("a", "\\b", "c")),
        (("", "ab", "c"), ("a", "b", "c")),
    ],
)
def test_scopes_do_not_collide(first: tuple[str, str, str], second: tuple[str, str, str]) -> None:
    assert scope_of(*first) != scope_of(*second)


def test_scope_is_deterministic() -> None:
    assert scope_of("c", "/p", "k") == scope_of("c", "/p", "k")


# --- body hash -------------------------------------------------------------------------------


def test_body_hash_ignores_key_order_and_whitespace() -> None:
    one = json.loads('{"relay": 1, "action": "ON", "opts": {"b": 2, "a": [1, 2]}}')
    two = json.loads('{ "opts" : { "a" : [ 1 , 2 ] , "b" : 2 } ,\n "action":"ON","relay":1 }')
    assert body_hash(one) == body_hash(two)


def test_body_hash_is_sha256_of_canonical_json() -> None:
    import hashlib

    body = {"b": 1, "a": "é"}
    canonical = '{"a":"é","b":1}'
    assert body_hash(body) == hashlib.sha256(canonical.encode()).hexdigest()
    assert len(body_hash({})) == 64


@pytest.mark.parametrize(
    ("one", "two"),
    [
        ({"action": "ON"}, {"action": "OFF"}),
        ({"relay": 1}, {"relay": "1"}),
        ({"relay": 1}, {"relay": 1.5}),
        ({"a": True}, {"a": 1}),
        ({"a": None}, {}),
        ({"a": [1, 2]}, {"a": [2, 1]}),
        ({"a": {"b": 1}}, {"a": {"b": 2}}),
    ],
)
def test_body_hash_differs_for_different_bodies(
    one: dict[str, object], two: dict[str, object]
) -> None:
    assert body_hash(one) != body_hash(two)


def test_body_hash_accepts_any_mapping() -> None:
    inner = MappingProxyType({"y": 2, "x": 1})
    proxy = MappingProxyType({"b": inner, "a": (1, 2)})
    assert body_hash(proxy) == body_hash({"a": [1, 2], "b": {"x": 1, "y": 2}})


def test_body_hash_rejects_unserializable() -> None:
    with pytest.raises(TypeError):
        body_hash({"a": object()})


# --- InFlight --------------------------------------------------------------------------------


async def test_first_claimant_gets_none_then_waiters_get_the_id() -> None:
    inflight = InFlight()
    assert inflight.claim("s") is None
    assert "s" in inflight
    first = inflight.claim("s")
    second = inflight.claim("s")
    assert first is not None
    assert second is not None
    assert not first.done()

    inflight.resolve("s", "cmd-1")

    assert await first == "cmd-1"
    assert await second == "cmd-1"
    assert "s" not in inflight
    assert len(inflight) == 0


async def test_scopes_are_independent() -> None:
    inflight = InFlight()
    assert inflight.claim("a") is None
    assert inflight.claim("b") is None
    waiter = inflight.claim("a")
    assert waiter is not None
    inflight.resolve("b", "cmd-b")
    assert not waiter.done()
    inflight.resolve("a", "cmd-a")
    assert await waiter == "cmd-a"


async def test_release_raises_in_waiters_and_frees_the_scope() -> None:
    inflight = InFlight()
    assert inflight.claim("s") is None
    waiters = [inflight.claim("s") for _ in range(3)]

    inflight.release("s")

    for waiter in waiters:
        assert waiter is not None
        with pytest.raises(ClaimReleasedError):
            await waiter
    assert "s" not in inflight
    # A waiter retrying becomes the new claimant.
    assert inflight.claim("s") is None


async def test_released_waiters_retry_and_exactly_one_claims() -> None:
    inflight = InFlight()
    claimants: list[int] = []

    async def request(n: int) -> str:
        while True:
            waiter = inflight.claim("s")
            if waiter is None:
                claimants.append(n)
                await asyncio.sleep(0)
                if len(claimants) == 1:
                    inflight.release("s")  # the first claimant is refused
                    return "refused"
                inflight.resolve("s", f"cmd-{n}")
                return f"cmd-{n}"
            try:
                return await waiter
            except ClaimReleasedError:
                continue

    results = await asyncio.gather(*(request(n) for n in range(10)))

    assert len(claimants) == 2
    winner = f"cmd-{claimants[1]}"
    assert results.count("refused") == 1
    assert results.count(winner) == 9
    assert len(inflight) == 0


async def test_cancelling_one_waiter_does_not_affect_others() -> None:
    inflight = InFlight()
    assert inflight.claim("s") is None
    waiter_a = inflight.claim("s")
    waiter_b = inflight.claim("s")
    assert waiter_a is not None
    assert waiter_b is not None

    task_a = asyncio.ensure_future(waiter_a)
    task_b = asyncio.ensure_future(waiter_b)
    await asyncio.sleep(0)
    task_a.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task_a

    inflight.resolve("s", "cmd-1")
    assert await task_b == "cmd-1"


async def test_cancelled_waiter_in_a_task_does_not_cancel_the_rest() -> None:
    inflight = InFlight()
    assert inflight.claim("s") is None

    async def wait() -> str:
        waiter = inflight.claim("s")
        assert waiter is not None
        return await waiter

    tasks = [asyncio.create_task(wait()) for _ in range(3)]
    await asyncio.sleep(0)
    tasks[0].cancel()
    await asyncio.sleep(0)
    inflight.release("s")
    with pytest.raises(asyncio.CancelledError):
        await tasks[0]
    for task in tasks[1:]:
        with pytest.raises(ClaimReleasedError):
            await task


def test_resolve_and_release_unclaimed_are_noops() -> None:
    inflight = InFlight()
    inflight.resolve("nothing", "cmd")
    inflight.release("nothing")
    assert len(inflight) == 0


def test_first_claim_needs_no_event_loop() -> None:
    inflight = InFlight()
    assert inflight.claim("s") is None
    inflight.release("s")
    assert "s" not in inflight


async def test_resolve_after_release_is_a_noop() -> None:
    inflight = InFlight()
    assert inflight.claim("s") is None
    waiter = inflight.claim("s")
    assert waiter is not None
    inflight.release("s")
    inflight.resolve("s", "cmd")
    with pytest.raises(ClaimReleasedError):
        await waiter


async def test_fifty_concurrent_identical_requests_make_one_claimant() -> None:
    inflight = InFlight()
    scope = scope_of("caller", "/api/iotee/relay", "key-1")
    started = asyncio.Event()
    created: list[str] = []

    async def request(n: int) -> tuple[bool, str]:
        await started.wait()  # line everybody up, then release them at once
        waiter = inflight.claim(scope)
        if waiter is None:
            await asyncio.sleep(0.01)  # handling the request takes a while
            created.append(f"cmd-{n}")
            inflight.resolve(scope, f"cmd-{n}")
            return True, f"cmd-{n}"
        return False, await waiter

    tasks = [asyncio.create_task(request(n)) for n in range(50)]
    await asyncio.sleep(0)
    started.set()
    results = await asyncio.gather(*tasks)

    assert sum(claimed for claimed, _ in results) == 1
    assert len(created) == 1
    assert {command_id for _, command_id in results} == set(created)
    assert len(inflight) == 0

"""The per-conversation turn order of what the server sends (parley.serving.http.turn_order):
first come, first served within a conversation, conversations independent, and no entry
left behind."""

from __future__ import annotations

import asyncio

from parley.serving.http.turn_order import TurnOrder


def test_turns_of_one_conversation_should_go_in_the_order_they_asked():
    async def main() -> list[str]:
        order, done = TurnOrder(), []

        async def turn(sender: str, name: str, seconds: float) -> None:
            async with order.turn(sender):
                await asyncio.sleep(seconds)
                done.append(name)

        first = asyncio.ensure_future(turn("ada", "ada 1 (slow)", 0.1))
        await asyncio.sleep(0)  # ada 1 holds the place
        await asyncio.gather(first, turn("ada", "ada 2", 0), turn("bob", "bob 1", 0))
        assert len(order) == 0  # nothing is kept once every turn is done
        return done

    assert asyncio.run(main()) == ["bob 1", "ada 1 (slow)", "ada 2"]


def test_a_failing_turn_should_give_its_place_up():
    async def main() -> None:
        order = TurnOrder()
        try:
            async with order.turn("ada"):
                raise RuntimeError("the platform is down")
        except RuntimeError:
            pass
        assert len(order) == 0
        async with order.turn("ada"):
            assert len(order) == 1

    asyncio.run(main())

"""The order in which a conversation's answers leave the server
(parley.serving.http.send_order): a reminder waits for the turns registered before it,
a channel's turn waits for nothing, conversations are independent, nothing is kept."""

from __future__ import annotations

import asyncio

from parley.serving.http.send_order import SendOrder


def test_a_reminder_should_send_after_the_turns_before_it_and_a_turn_never_wait():
    async def main() -> list[str]:
        order, sent = SendOrder(), []
        released = asyncio.Event()

        async def channel_turn(sender: str, name: str, until: asyncio.Event | None) -> None:
            async with order.turn(sender):
                if until is not None:
                    await until.wait()  # a platform slow to take the message
                sent.append(name)

        async def reminder(sender: str, name: str) -> None:
            async with order.turn(sender) as after_earlier:
                await after_earlier()
                sent.append(name)

        slow = asyncio.ensure_future(channel_turn("ada", "ada's turn", released))
        await asyncio.sleep(0)
        waiting = asyncio.ensure_future(reminder("ada", "ada's reminder"))
        # A client answering the pushed message with the next one, before acknowledging
        # it: that turn must not wait, or the conversation would be stuck.
        await channel_turn("ada", "ada's next turn", None)
        await reminder("bob", "bob's reminder")  # another conversation: no wait
        released.set()
        await asyncio.gather(slow, waiting)
        assert len(order) == 0  # nothing is kept once every turn is done
        return sent

    assert asyncio.run(main()) == ["ada's next turn", "bob's reminder", "ada's turn",
                                   "ada's reminder"]


def test_a_failing_turn_should_not_hold_the_reminders_after_it():
    async def main() -> None:
        order = SendOrder()
        try:
            async with order.turn("ada"):
                raise RuntimeError("the platform is down")
        except RuntimeError:
            pass
        assert len(order) == 0
        async with order.turn("ada") as after_earlier:
            await asyncio.wait_for(after_earlier(), 1)

    asyncio.run(main())

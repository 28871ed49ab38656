"""Responses and channel messages on generated input: only the library's own answers."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from parley.data.events import BotUttered
from parley.runtime.nlg import fill_placeholders, variations_for
from parley.runtime.output import channel_messages

names = st.text(alphabet="abcxyz_.[]0 ", min_size=1, max_size=6)
values = st.dictionaries(names, st.one_of(st.none(), st.integers(), st.text(max_size=5)),
                         max_size=4)
templates = st.text(alphabet="{}ab_x.[]0 \n", max_size=30)


@settings(max_examples=300, deadline=None)
@given(templates, values)
def test_filling_any_template_should_give_a_string_and_fill_what_it_names(template, fill):
    out = fill_placeholders(template, fill)
    assert isinstance(out, str)
    if "{" not in template and "}" not in template:
        assert out == template
    for name, value in fill.items():
        if template == "{" + name + "}" and "{" not in name and "}" not in name \
                and "\n" not in name:
            assert out == str(value)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.fixed_dictionaries({}, optional={
    "text": st.text(max_size=5), "channel": st.sampled_from(["rest", "slack", ""]),
    "condition": st.lists(st.fixed_dictionaries({
        "type": st.just("slot"), "name": st.sampled_from(["a", "b"]),
        "value": st.one_of(st.none(), st.booleans(), st.sampled_from(["X", "x", "y"]))}),
        max_size=2)}), max_size=6),
    st.sampled_from([None, "rest", "slack"]),
    st.dictionaries(st.sampled_from(["a", "b"]),
                    st.one_of(st.none(), st.booleans(), st.sampled_from(["X", "y"]))))
def test_chosen_variations_should_suit_the_channel_and_the_slots(variations, channel, slots):
    chosen = variations_for(variations, channel, slots)
    for variation in chosen:
        assert variation.get("channel") in (None, "", channel)
    if chosen and any(v.get("condition") for v in chosen):
        assert all(v.get("condition") for v in chosen)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.none(), st.text(max_size=20)),
       st.fixed_dictionaries({}, optional={
           "buttons": st.lists(st.fixed_dictionaries({"title": st.text(max_size=3),
                                                      "payload": st.text(max_size=3)}),
                               max_size=2),
           "image": st.one_of(st.none(), st.text(max_size=5)),
           "custom": st.one_of(st.none(), st.dictionaries(st.text(max_size=2),
                                                          st.integers(), max_size=2)),
           "attachment": st.one_of(st.none(), st.text(max_size=5)),
       }))
def test_any_bot_event_should_become_messages_for_its_recipient(text, data):
    for message in channel_messages("someone", BotUttered(text=text, data=data)):
        assert message["recipient_id"] == "someone"
        assert set(message) <= {"recipient_id", "text", "image", "buttons", "attachment",
                                "custom"}
        assert len(message) > 1 or not message

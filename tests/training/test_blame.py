"""Errors raised while a node trains, said where the node stands in config.yml."""

from __future__ import annotations

import pytest

from parley.data.message import Message
from parley.data.training_data import TrainingData
from parley.errors import ConfigError
from parley.recipe import NLU, Node
from parley.training.blame import blamed_on

DIET = Node("nlu_2_DIETClassifier", NLU, "DIETClassifier", {}, "config.yml", 12)


def test_running_out_of_memory_should_name_the_node_and_the_longest_example():
    # A 400 000-word line in data/: DIET's attention over it asked numpy for 149 GiB, and
    # the CLI called the MemoryError a bug in Parley, naming neither the config entry
    # nor the example.
    data = TrainingData([Message("hi", "greet", file="data/nlu.yml", line=4),
                         Message("hello " * 1000, "greet", file="data/huge.yml", line=5),
                         Message("bye", "goodbye", file="data/nlu.yml", line=9)])
    with pytest.raises(ConfigError) as info, blamed_on(DIET, "training", data):
        raise MemoryError("Unable to allocate 149. GiB for an array")
    message = str(info.value)
    assert message.startswith("config.yml:12: DIETClassifier ran out of memory while training")
    assert "Unable to allocate 149. GiB" in message
    assert "data/huge.yml:5" in message and "1000 words" in message


def test_running_out_of_memory_without_training_data_should_still_name_the_node():
    with pytest.raises(ConfigError, match="^config.yml:12: DIETClassifier ran out of memory "
                                          "while training"), blamed_on(DIET, "training"):
        raise MemoryError()

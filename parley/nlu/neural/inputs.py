"""The messages' features as DIET's inputs: the featurizers' records, checked, in a table.

The table itself (stacking, batching, attention blocks) is generic and lives in
:mod:`parley.ml.batching`; this is the NLU side — which featurizers' records to take from the
messages, and errors that name the message and the pipeline.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from parley.data.message import Message
from parley.ml.batching import FeatureTable
from parley.nlu.features import features_in_one_layout


def feature_table(messages: Sequence[Message], origins: Collection[str] | None = None
                  ) -> FeatureTable:
    """The features of ``messages`` from the featurizers named in ``origins`` (all if None).

    Raises ValueError when there are no messages, no features, or messages that passed
    through different featurizers.
    """
    if not messages:
        raise ValueError("no messages to build features from")
    records = features_in_one_layout(messages, origins)
    return FeatureTable(records)

"""Dialogue states as numbers: what TED (and any learned policy) sees of a conversation.

- ``state``: :class:`StateFeaturizer`, Rasa's single-state featurizer — one state's intent
  (or user text), entities, previous action (name or text), slots and active loop, each
  attribute its own vector;
- ``trackers``: the tracker featurizers — max-history (TED) and full dialogue — turning
  training trackers into examples over a table of distinct states;
- ``intents``: intent max-history (UnexpecTED): the intents that follow each history.
"""

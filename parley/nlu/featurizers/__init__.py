"""Sparse featurizers: each appends a :class:`~parley.nlu.features.Features` per message."""

"""Learned NLU models in PyTorch: DIETClassifier and ResponseSelector.

Import-light: nothing here imports torch until a model is built or loaded, so configs
without these components never pay for it. Modules:

- ``inputs``: the messages' features, checked, as a :class:`parley.ml.batching.FeatureTable`;
- ``model``: DIET's network, wired from the blocks in :mod:`parley.ml` (transformer, CRF);
- ``training``: DIET's loss and held-out scores over the loop of :mod:`parley.ml.training`;
- ``diet`` / ``response_selector``: the components with Rasa's names and parameters.
"""

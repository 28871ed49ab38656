"""Learned NLU models in PyTorch: DIETClassifier and ResponseSelector.

Import-light: nothing here imports torch until a model is built or loaded, so configs
without these components never pay for it. Modules:

- ``_torch``: importing torch with a clear error, seeding, threads;
- ``inputs``: the messages' features as tensors (sparse stays sparse);
- ``layers``: sparse-input, randomly connected dense, transformer encoder;
- ``crf``: the linear-chain CRF that tags entities;
- ``model``: DIET's network; ``training``: the epoch loop, batching, evaluation;
- ``diet`` / ``response_selector``: the components with Rasa's names and parameters.
"""

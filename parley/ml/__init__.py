"""PyTorch building blocks shared by the learned components (DIET today, TED next).

Generic: tensors, layers, batching, training loops. Nothing here imports ``parley.nlu`` or
``parley.dialogue`` (a layering test holds that); what a model needs from them arrives as
plain arrays — per-example feature blocks, label ids, tag ids. Import-light like the rest of
Parley: only the modules that need torch import it, and nothing imports them until a model
is built. Modules:

- ``torch_env``: importing torch with a clear error, seeding, threads, the heap while training;
- ``batching``: feature blocks of many examples as tensors (sparse stays sparse), packed
  into attention blocks;
- ``grouped``: the randomly connected dense layer (Rasa's ``connection_density``);
- ``layers``: dropout, sparse-input and feed-forward layers, the transformer encoder;
- ``crf``: the linear-chain CRF that tags sequences;
- ``adam``: Adam with coupled L2, bitwise equal to torch's fused Adam;
- ``training``: the epoch loop (batch-size schedule, balanced order, sharded steps,
  held-out evaluation, checkpoints) over a model-specific loss;
- ``quasi_newton``: numpy L-BFGS and OWL-QN for the linear models (no torch).
"""

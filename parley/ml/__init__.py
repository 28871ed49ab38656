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
- ``grouped_kernel``: its float32 training products in C (AVX2), a layer in one call;
- ``layers``: dropout, sparse-input and feed-forward layers, the transformer encoder;
- ``crf``: the linear-chain CRF that tags sequences;
- ``adam``: Adam with coupled L2, bitwise equal to torch's fused Adam;
- ``training``: the epoch loop (batch-size schedule, balanced order, sharded steps,
  held-out evaluation, checkpoints) over a model-specific loss;
- ``cores``: the process's cores shared out among its trainings step by step;
- ``lane_process``: a step's second lane in a forked process (Linux), bitwise as a thread;
- ``forking``: what a forked child of a training needs (messages, signals, sockets, memory);
- ``quasi_newton``: numpy L-BFGS and OWL-QN for the linear models (no torch).
"""

import os

# Training's bfloat16 products go through oneDNN, and PyTorch keeps a primitive (with its
# buffers) per shape in an LRU cache of LRU_CACHE_CAPACITY entries, 1,024 by default. With
# batches padded to few shapes, 32 keep the hits and hold less: snips-small's DIET training
# peaked at 615 MB instead of 679 MB, financial-demo's (30 epochs) at 621 instead of 675,
# CPU time within noise. Set before torch is imported here; a value the user set stays.
os.environ.setdefault("LRU_CACHE_CAPACITY", "32")

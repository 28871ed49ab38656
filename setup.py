"""The one thing pyproject.toml cannot say without an experimental table: Parley's C
kernels — for parsing one message, the CRF's tags (parley/ml/_chain.c, used through
parley/ml/chain_kernel.py) and a linear classifier's product (parley/ml/_linear.c, through
parley/ml/linear_kernel.py); for training, dropout in one pass (parley/ml/_dropout.c,
through parley/ml/dropout_kernel.py) and, on AVX2 CPUs, the grouped layers' float32
products (parley/ml/_grouped.c, through parley/ml/grouped_kernel.py; its fused
multiply-adds are explicit intrinsics, so the flag below leaves them alone).

``optional``: without a C compiler the install goes on, and Parley computes the same in
numpy and torch (slower).
"""

from setuptools import Extension, setup

# no fused multiply-adds: the same sums on every machine
FLAGS = ["-O3", "-ffp-contract=off"]

setup(ext_modules=[
    Extension(f"parley.ml.{name}", [f"parley/ml/{name}.c"], optional=True,
              extra_compile_args=FLAGS)
    for name in ("_chain", "_linear", "_dropout", "_grouped")
])

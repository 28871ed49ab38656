"""The one thing pyproject.toml cannot say without an experimental table: Parley's C
kernels — for parsing one message, the CRF's tags (parley/ml/_chain.c, used through
parley/ml/chain_kernel.py) and a linear classifier's product (parley/ml/_linear.c, through
parley/ml/linear_kernel.py); for training, dropout in one pass and the GELU before it
(parley/ml/_dropout.c, through parley/ml/dropout_kernel.py) and the grouped layers'
products: float32 on AVX2 CPUs, bfloat16 on AVX512_BF16 ones (parley/ml/_grouped.c and
_grouped_bf16.c, through parley/ml/grouped_kernel.py; their fused multiply-adds are explicit
intrinsics, so the flag below leaves them alone).

``optional``: without a C compiler the install goes on, and Parley computes the same in
numpy and torch (slower).
"""

from setuptools import Extension, setup

# no fused multiply-adds: the same sums on every machine
FLAGS = ["-O3", "-ffp-contract=off"]

# each kernel's sources; _grouped's bfloat16 products are a file of their own
SOURCES = {"_chain": [], "_linear": [], "_dropout": [], "_attention": [], "_sparse": [],
           "_grouped": ["_grouped_bf16.c", "_grouped_amx.c"]}

setup(ext_modules=[
    Extension(f"parley.ml.{name}", [f"parley/ml/{name}.c"] + [f"parley/ml/{s}" for s in more],
              depends=["parley/ml/_grouped.h"], optional=True, extra_compile_args=FLAGS)
    for name, more in SOURCES.items()
])

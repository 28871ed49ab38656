"""The one thing pyproject.toml cannot say without an experimental table: the C kernel of
the CRF's prediction (parley/ml/_chain.c, used through parley/ml/chain_kernel.py).

``optional``: without a C compiler the install goes on, and Parley runs the same
prediction in numpy (slower per message; the same tags).
"""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("parley.ml._chain", ["parley/ml/_chain.c"], optional=True,
              # no fused multiply-adds: the same sums on every machine
              extra_compile_args=["-O3", "-ffp-contract=off"]),
])

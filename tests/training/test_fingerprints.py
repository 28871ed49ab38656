"""A node's fingerprint follows the component's code and the precision training uses."""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

import pytest

from parley.registry import get_class as get_component_class
from parley.training import code_fingerprint
from parley.training.code_fingerprint import implementation_fingerprint
from parley.training.fingerprints import component_fingerprint

COMPONENT = '''
"""A component written for the test."""
from parley.component import Component


def _helper(x):
    return x + {step}  # a comment


class Doubler(Component):
    """Docstring."""

    name = "Doubler"

    def process(self, messages):
        return [_helper(m) for m in messages]
'''


def _write(folder: Path, text: str, stamp: int) -> None:
    path = folder / "doubler_mod.py"
    path.write_text(text)
    os.utime(path, ns=(stamp, stamp))


@pytest.fixture
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("doubler_mod", None)


def _fingerprint() -> str:
    sys.modules.pop("doubler_mod", None)
    module = importlib.import_module("doubler_mod")
    return implementation_fingerprint(module.Doubler)


def test_editing_a_components_code_should_change_its_fingerprint(module_dir):
    _write(module_dir, COMPONENT.format(step=1), 1_000_000_000)
    before = _fingerprint()
    _write(module_dir, COMPONENT.format(step=2), 2_000_000_000)
    assert _fingerprint() != before


def test_imports_should_be_found_as_pythons_own_parser_finds_them():
    """The pattern that finds imports (cheap: every training fingerprints every component)
    finds every module an import names in every module of parley, as ``ast`` does."""
    import ast

    root = Path(code_fingerprint.__file__).resolve().parents[1]
    for path in root.rglob("*.py"):
        module = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        package = module.removesuffix(".__init__") if path.name == "__init__.py" \
            else module.rpartition(".")[0]
        expected: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                expected.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    parent = ".".join(parts[:len(parts) - node.level + 1])
                    base = f"{parent}.{base}" if base else parent
                expected |= {base} | {f"{base}.{alias.name}" for alias in node.names}
        found = code_fingerprint._imports(path.read_text(), package)
        assert expected <= found, f"{path}: missed {sorted(expected - found)}"


def test_code_the_component_imports_should_be_part_of_it(monkeypatch):
    diet = get_component_class("DIETClassifier")
    before = implementation_fingerprint(diet)
    original = code_fingerprint._parse

    def edited(path, module):  # as if parley/nlu/neural/model.py had been changed
        digest, imports = original(path, module)
        return (digest + "-edited" if module == "parley.nlu.neural.model" else digest), imports

    monkeypatch.setattr(code_fingerprint, "_parse", edited)
    assert implementation_fingerprint(diet) != before
    tokenizer = get_component_class("WhitespaceTokenizer")
    monkeypatch.setattr(code_fingerprint, "_parse", original)
    unchanged = implementation_fingerprint(tokenizer)
    monkeypatch.setattr(code_fingerprint, "_parse", edited)
    assert implementation_fingerprint(tokenizer) == unchanged


def test_the_precision_diet_trains_in_should_be_in_its_fingerprint(monkeypatch):
    torch = pytest.importorskip("torch")
    from parley.ml import grouped, torch_env

    monkeypatch.setattr(grouped, "_native_bf16", lambda: True)  # a CPU with bfloat16
    monkeypatch.setattr(torch_env, "_cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    diet = get_component_class("DIETClassifier")
    tokenizer = get_component_class("WhitespaceTokenizer")
    found = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("PARLEY_BF16", flag)
        monkeypatch.setattr(grouped, "_matmul_dtype", None)  # decided again
        found[flag] = (component_fingerprint(diet, "DIETClassifier", {}, {}),
                       component_fingerprint(tokenizer, "WhitespaceTokenizer", {}, {}))
    assert found["1"][0] != found["0"][0]
    assert found["1"][1] == found["0"][1]


def test_a_cpu_without_bfloat16_should_be_known_without_importing_torch():
    """The fingerprint says float32 from the CPU's flags when they rule bfloat16 out, the
    same value PyTorch gives; a cached training then never imports PyTorch (2-3 s)."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import json, sys
        from parley.ml.torch_env import (float32_certain, grouped_kernel_products,
                                         training_kernels)
        from parley.registry import get_class
        print(json.dumps([float32_certain(), get_class("DIETClassifier").runtime_fingerprint(),
                          "torch" in sys.modules, grouped_kernel_products(),
                          training_kernels()]))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env={**os.environ, "PARLEY_BF16": "1"})
    certain, fingerprint, imported, in_c, in_c_too = json.loads(done.stdout)
    if not certain:
        pytest.skip("this CPU may do bfloat16: PyTorch is asked, as before")
    expected = {"matmul_dtype": "torch.float32"}
    if in_c:  # AVX2: the grouped layers' products run in Parley's C kernel (other last bits)
        expected["grouped_products"] = "c-avx2"
    expected.update(in_c_too)  # attention, sparse gradients in C (other last bits too)
    assert not imported and fingerprint == expected
    torch = pytest.importorskip("torch")
    from parley.ml import grouped

    assert str(grouped.matmul_dtype()) == str(torch.float32)  # what PyTorch says, too


def test_bfloat16_flags_or_another_cpu_should_leave_the_answer_to_torch(monkeypatch):
    from parley.ml import torch_env

    monkeypatch.setenv("PARLEY_BF16", "1")
    monkeypatch.setattr(torch_env, "_cpu_flags", lambda: {"avx2", "avx512f"})
    assert not torch_env.float32_certain()
    monkeypatch.setattr(torch_env, "_cpu_flags", lambda: {"avx2", "avx_ne_convert"})
    assert not torch_env.float32_certain()
    monkeypatch.setattr(torch_env, "_cpu_flags", lambda: None)  # not Linux x86
    assert not torch_env.float32_certain()
    monkeypatch.setattr(torch_env, "_cpu_flags", lambda: {"avx2", "fma"})
    assert torch_env.float32_certain()
    monkeypatch.setattr(torch_env, "_cpu_flags", lambda: {"avx512f"})
    monkeypatch.setenv("PARLEY_BF16", "0")
    assert torch_env.float32_certain()


def test_a_cpu_with_avx512_should_be_known_as_bfloat16_without_importing_torch():
    """Where the flags settle bfloat16 (or float32), the fingerprint says so without
    importing PyTorch, and PyTorch, asked afterwards, agrees."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import json, sys
        from parley.ml.torch_env import (dense_grouped_products, grouped_kernel_amx_products,
                                         training_kernels,
                                         grouped_kernel_bf16_products, grouped_kernel_products,
                                         known_matmul_dtype)
        from parley.registry import get_class
        print(json.dumps([known_matmul_dtype(),
                          get_class("DIETClassifier").runtime_fingerprint(),
                          "torch" in sys.modules, dense_grouped_products(),
                          grouped_kernel_products(), grouped_kernel_bf16_products(),
                          grouped_kernel_amx_products(), training_kernels()]))
    """)
    env = {k: v for k, v in os.environ.items()
           if k not in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env={**env, "PARLEY_BF16": "1"})
    (known, fingerprint, imported, dense, in_c, in_c_bf16, on_tiles,
     in_c_too) = json.loads(done.stdout)
    if known is None:
        pytest.skip("the flags leave the answer to PyTorch on this CPU")
    expected = {"matmul_dtype": known}
    if known == "torch.bfloat16" and dense:  # AMX the kernel cannot have: they run dense
        expected["grouped_products"] = "dense"
    if known == "torch.float32" and in_c:  # AVX2: in Parley's C kernel
        expected["grouped_products"] = "c-avx2"
    if known == "torch.bfloat16" and in_c_bf16:  # AVX512_BF16: its bfloat16 one (on AMX tiles)
        expected["grouped_products"] = "c-amx" if on_tiles else "c-avx512bf16"
    expected.update(in_c_too)
    assert not imported and fingerprint == expected
    pytest.importorskip("torch")
    asked = subprocess.run(
        [sys.executable, "-c", "from parley.ml.grouped import matmul_dtype; "
                               "print(matmul_dtype())"],
        capture_output=True, text=True, check=True, env={**env, "PARLEY_BF16": "1"})
    assert asked.stdout.strip() == known  # what PyTorch says, too


def test_bfloat16_is_certain_only_with_avx512_core_onednn_and_no_cap(monkeypatch):
    from parley.ml import torch_env

    core = {"avx2", "avx512f", "avx512bw", "avx512vl", "avx512dq"}
    monkeypatch.setenv("PARLEY_BF16", "1")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(torch_env, "_torch_has_onednn", lambda: True)
    monkeypatch.setattr(torch_env, "_cpu_flags", lambda: core)
    assert torch_env.known_matmul_dtype() == "torch.bfloat16"
    monkeypatch.setattr(torch_env, "_cpu_flags", lambda: core - {"avx512vl"})
    assert torch_env.known_matmul_dtype() is None  # AVX-512, not all of avx512_core: ask
    monkeypatch.setattr(torch_env, "_cpu_flags", lambda: {"avx2", "avx_ne_convert"})
    assert torch_env.known_matmul_dtype() is None  # AVX2-VNNI-2 maybe: ask
    monkeypatch.setattr(torch_env, "_cpu_flags", lambda: None)
    assert torch_env.known_matmul_dtype() is None
    monkeypatch.setattr(torch_env, "_cpu_flags", lambda: core)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert torch_env.known_matmul_dtype() is None  # oneDNN capped: ask
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    monkeypatch.setattr(torch_env, "_torch_has_onednn", lambda: False)
    assert torch_env.known_matmul_dtype() is None
    monkeypatch.setenv("PARLEY_BF16", "0")
    assert torch_env.known_matmul_dtype() == "torch.float32"


def test_teds_fingerprint_names_its_attention_in_c_where_built(monkeypatch):
    """A TED cached where the attention kernel was built is not reused where it was not
    (other last bits); the sparse kernel, which TED does not take, does not count."""
    from parley.dialogue.policies.ted import TEDPolicy
    from parley.dialogue.policies.unexpected import UnexpecTEDIntentPolicy
    from parley.ml import torch_env

    monkeypatch.setattr(torch_env, "training_kernels",
                        lambda: {"attention": "c-runs", "sparse_gradient": "c"})
    assert TEDPolicy.runtime_fingerprint() == {"attention": "c-runs"}
    assert UnexpecTEDIntentPolicy.runtime_fingerprint() == {"attention": "c-runs"}
    monkeypatch.setattr(torch_env, "training_kernels", lambda: {"sparse_gradient": "c"})
    assert TEDPolicy.runtime_fingerprint() == {}

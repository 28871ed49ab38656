"""benchmarks/side_by_side.py: which config each tool gets, and where projects are found."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import side_by_side
from tests.conftest import SHARED_DATA, needs_shared_data


def test_a_config_without_pipeline_or_policies_should_mean_rasas_defaults(tmp_path: Path):
    cases = {"empty": "language: en\n", "no_policies": "pipeline:\n  - name: X\n",
             "both": "pipeline:\n  - name: X\npolicies:\n  - name: Y\n"}
    for name, text in cases.items():
        (tmp_path / f"{name}.yml").write_text(text)
    assert side_by_side.names_rasa_defaults(tmp_path / "empty.yml")
    assert side_by_side.names_rasa_defaults(tmp_path / "no_policies.yml")
    assert not side_by_side.names_rasa_defaults(tmp_path / "both.yml")


@needs_shared_data
def test_projects_should_be_bots_with_their_portable_config_or_nlu_sets():
    formbot = side_by_side.project_path("rasa-example-formbot")
    assert side_by_side.is_bot(formbot)
    assert side_by_side.own_config(formbot).name == "config-portable.yml"
    snips = side_by_side.project_path("snips-small")
    assert snips == SHARED_DATA / "snips-small" and not side_by_side.is_bot(snips)
    # The moodbot's config is `rasa init`'s: everything commented out, Rasa's defaults.
    moodbot = side_by_side.project_path("rasa-init-moodbot")
    assert side_by_side.names_rasa_defaults(side_by_side.own_config(moodbot))
    with pytest.raises(SystemExit, match="no project 'nope'"):
        side_by_side.project_path("nope")


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="Linux /proc only")
def test_a_process_trees_memory_counts_what_a_thread_forked(tmp_path: Path):
    """A training's lane process is forked by a worker thread; its own pages come on top
    of the parent's resident memory."""
    import subprocess
    import sys
    import time

    from benchmarks._tree_memory import TreePeak

    script = (
        "import os, threading, time\n"
        "def fork():\n"
        "    if os.fork() == 0:\n"
        "        block = bytearray(80 << 20)\n"  # 80 MB of the child's own, touched
        "        time.sleep(1.5)\n"
        "        os._exit(0)\n"
        "    os.wait()\n"
        "t = threading.Thread(target=fork); t.start(); t.join()\n")
    process = subprocess.Popen([sys.executable, "-c", script])
    with TreePeak(process.pid, every_s=0.02) as tree:
        process.wait()
        time.sleep(0.05)
    assert tree.mb >= 80

"""Training speed as users feel it: whole `parley train` processes (``python -m parley``),
wall time, CPU time (user + system) and peak RSS.

    python benchmarks/train_speed.py

For the starter project (`parley init`) and ../shared/data/bots/rasa-init-moodbot (copied to a
temporary folder): train from scratch, again unchanged, after a responses-only edit, and after
one new NLU example. Rasa 3.6 on this kind of machine (../shared/anchors.md): 49.7 s, 7.3 s,
7.5 s, 34.8 s. Targets: < 3 s, < 0.5 s, < 0.5 s.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MOODBOT = REPO.parent / "shared" / "data" / "bots" / "rasa-init-moodbot"
RASA = {"from scratch": 49.7, "unchanged": 7.3, "responses only": 7.5, "one NLU example": 34.8}

def parley(project: Path, *args: str) -> tuple[float, float, float]:
    """One ``python -m parley ARGS`` process, as users start it (so ending as the command
    line does): its wall seconds, CPU seconds (user + system) and peak RSS in MB."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout, installed or not
    with tempfile.TemporaryFile("w+") as output:
        start = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "parley", *args], cwd=project,
                                 env=env, stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own usage
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        if child.returncode != 0:
            output.seek(0)
            raise SystemExit(f"parley {' '.join(args)} failed in {project}:\n{output.read()}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    if old not in text:
        raise SystemExit(f"{path}: cannot find {old!r} to edit")
    path.write_text(text.replace(old, new, 1))


def steps(project: Path, response: tuple[str, str], example: tuple[str, str]) -> list[tuple]:
    rows = []
    rows.append(("from scratch", *parley(project, "train")))
    rows.append(("unchanged", *parley(project, "train")))
    edit(project / "domain.yml", *response)
    rows.append(("responses only", *parley(project, "train")))
    edit(project / "data" / "nlu.yml", *example)
    rows.append(("one NLU example", *parley(project, "train")))
    return rows


def main() -> int:
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        starter = Path(tmp) / "starter"
        subprocess.run([sys.executable, "-m", "parley.cli.main", "init", "--no-prompt",
                        str(starter)], check=True, capture_output=True, cwd=REPO)
        for row in steps(starter, ("Done, I will remind you.", "Done! I will remind you."),
                         ("      - howdy\n", "      - howdy\n      - hiya\n")):
            table.append(("starter", *row))
        if MOODBOT.is_dir():
            mood = Path(tmp) / "moodbot"
            shutil.copytree(MOODBOT, mood)
            for row in steps(mood, ('"Hey! How are you?"', '"Hey there! How are you?"'),
                             ("    - hey\n", "    - hey\n    - hiya\n")):
                table.append(("rasa-init-moodbot", *row))
    print("| project | step | wall s | CPU s | peak RSS MB | Rasa 3.6 wall s |")
    print("|---|---|---:|---:|---:|---:|")
    for project, step, wall, cpu, peak in table:
        print(f"| {project} | {step} | {wall:.2f} | {cpu:.2f} | {peak:.0f} | {RASA[step]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

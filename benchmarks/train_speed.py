"""Training speed as users feel it: whole `parley train` processes, wall time and peak RSS.

    python benchmarks/train_speed.py

For the starter project (`parley init`) and ../shared/data/bots/rasa-init-moodbot (copied to a
temporary folder): train from scratch, again unchanged, after a responses-only edit, and after
one new NLU example. Rasa 3.6 on this kind of machine (../shared/anchors.md): 49.7 s, 7.3 s,
7.5 s, 34.8 s. Targets: < 3 s, < 0.5 s, < 0.5 s.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MOODBOT = REPO.parent / "shared" / "data" / "bots" / "rasa-init-moodbot"
RASA = {"from scratch": 49.7, "unchanged": 7.3, "responses only": 7.5, "one NLU example": 34.8}

# Runs the CLI in this process and reports its own peak RSS (VmHWM survives no exec).
_RUN = (
    "import re, sys\n"
    "from parley.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
    "print('PEAK_KB', hwm, file=sys.stderr)\n"
    "raise SystemExit(code)\n"
)


def parley(project: Path, *args: str) -> tuple[float, float]:
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout, installed or not
    done = subprocess.run([sys.executable, "-c", _RUN, *args], cwd=project, env=env,
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"parley {' '.join(args)} failed in {project}:\n{done.stderr}")
    peak = re.search(r"PEAK_KB (\d+)", done.stderr)
    return wall, int(peak.group(1)) / 1024 if peak else float("nan")


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
    print("| project | step | wall s | peak RSS MB | Rasa 3.6 wall s |")
    print("|---|---|---:|---:|---:|")
    for project, step, wall, peak in table:
        print(f"| {project} | {step} | {wall:.2f} | {peak:.0f} | {RASA[step]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

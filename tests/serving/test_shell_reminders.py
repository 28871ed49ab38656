"""``parley shell`` fires reminders while it waits for the next line: a custom action sets
one, and its answer is printed before the user types again (Rasa's console never shows
it). A scripted model and action server decide what runs; stdin waits as a person would."""

from __future__ import annotations

import io
import threading
import time

from parley.serving.shell import PROMPT, run_shell
from tests.runtime.fakes import ScriptedModel
from tests.runtime.test_reminders import DOMAIN, POLICY, Actions, reminder


class Typist(io.StringIO):
    """Types its lines one by one; after the last, waits (up to ``patience`` seconds) until
    the output shows ``until`` before ending the input, as a person reads before leaving."""

    def __init__(self, lines: list[str], out: io.StringIO, until: str,
                 patience: float = 5.0) -> None:
        super().__init__()
        self.lines, self.out, self.until, self.patience = list(lines), out, until, patience

    def readline(self, size: int | None = -1) -> str:
        if self.lines:
            return self.lines.pop(0) + "\n"
        deadline = time.monotonic() + self.patience
        while self.until not in self.out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        return ""


class LockedOutput(io.StringIO):
    """The shell prints from the event loop while the typist reads from another thread."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()

    def write(self, text: str) -> int:
        with self.lock:
            return super().write(text)

    def getvalue(self) -> str:
        with self.lock:
            return super().getvalue()


def test_a_reminder_fires_and_is_printed_while_the_shell_waits_for_a_line():
    actions = Actions()
    actions.next["action_set"] = lambda tracker: [
        reminder(entities=[{"entity": "PERSON", "value": "Ada"}])]
    out = LockedOutput()
    typist = Typist(['/set{"PERSON": "Ada"}'], out, until="Remember to call Ada!")
    began = time.monotonic()
    assert run_shell(ScriptedModel(DOMAIN, POLICY), typist, out, sender_id="ada",
                     executor=actions, seed=0) == 1
    assert time.monotonic() - began < 4  # it fired: the typist did not wait it out
    shown = out.getvalue()
    # the prompt, the answer on a line of its own, and the prompt again for the next line
    assert f"{PROMPT}\nRemember to call Ada!\n{PROMPT}" in shown


def test_reminders_still_to_come_end_with_the_conversation(caplog):
    actions = Actions()
    actions.next["action_set"] = lambda tracker: [reminder(name="later", seconds=60)]
    out = LockedOutput()
    with caplog.at_level("INFO", logger="parley.serving.shell"):
        assert run_shell(ScriptedModel(DOMAIN, POLICY),
                         io.StringIO('/set{"PERSON": "Ada"}\n/stop\n'), out, sender_id="ada",
                         executor=actions, seed=0) == 1
    assert "Remember" not in out.getvalue()
    assert "1 reminder(s) still to come (later)" in caplog.text

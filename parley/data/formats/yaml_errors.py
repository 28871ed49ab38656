"""Turn PyYAML's syntax errors into a message that names where the problem starts.

PyYAML reports where parsing stopped (``problem_mark``), which is often lines after the
mistake: a key missing its ``:`` on line 12 is reported on line 15, where the scanner gave
up looking for the colon. Its ``context_mark`` says where the thing being read began.
Which of the two is the mistake depends on what was being read:

- a scanner error (a simple key, a quoted scalar, a flow collection, …): the token that
  never ended starts at the context mark — that is where to look; except inside a block
  scalar (``examples: |``), where the bad character is where scanning stopped;
- a parser error inside a ``[ ]`` / ``{ }`` collection: the bracket that was never
  closed, at the context mark;
- a parser error inside a block mapping or sequence: the context mark is only the start of
  the enclosing mapping, so the problem is where parsing stopped — unless the last value
  read before it is a quoted string running over several lines, the classic unclosed
  quote, which then starts the problem.

Both lines are named whenever they differ.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from parley.errors import YamlSyntaxError

_HINT = "Check the indentation and quoting around this line."


def _line(mark: yaml.Mark | None) -> int | None:
    return mark.line + 1 if mark is not None else None


def _runaway_quote(text: str, stop: yaml.Mark) -> int | None:
    """The start line of a quoted scalar that spans lines and ends just before ``stop``."""
    last: yaml.ScalarToken | None = None
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if token.start_mark.index >= stop.index:
                break
            if isinstance(token, yaml.ScalarToken):
                last = token
    except yaml.YAMLError:
        pass  # the scanner may fail at or after the same spot; the tokens so far suffice
    if last is not None and last.style in ('"', "'") and last.end_mark.line > last.start_mark.line:
        return last.start_mark.line + 1
    return None


def syntax_error(exc: yaml.MarkedYAMLError, text: str, file: str | Path | None) -> YamlSyntaxError:
    """The :class:`YamlSyntaxError` for ``exc``, placed where the problem starts."""
    stop = exc.problem_mark or exc.context_mark
    stop_line = _line(stop)
    context_line = _line(exc.context_mark)
    problem = exc.problem or "invalid YAML"
    context = exc.context or ""
    if context_line is None or stop_line is None or context_line == stop_line:
        what = f"{context}; {problem}" if context else problem
        return YamlSyntaxError(f"invalid YAML: {what}", file, stop_line, hint=_HINT)
    if "simple key" in context:
        message = (f"invalid YAML: the key on this line has no ':' after it (parsing stopped "
                   f"at line {stop_line}, where the scanner gave up looking for it)")
        return YamlSyntaxError(message, file, context_line,
                               hint="Write `key: value` with a space after the colon, or "
                               "start a list item with '- '.")
    if "quoted scalar" in context:
        message = (f"invalid YAML: the quoted value that starts here is never closed "
                   f"(parsing stopped at line {stop_line}: {problem})")
        return YamlSyntaxError(message, file, context_line,
                               hint="Add the closing quote, or escape quotes inside the value.")
    if "block scalar" in context:  # the bad character is inside the block, where it stopped
        message = f"invalid YAML: {context} (which starts at line {context_line}); {problem}"
        return YamlSyntaxError(message, file, stop_line, hint=_HINT)
    if isinstance(exc, yaml.scanner.ScannerError) or "flow" in context:
        message = (f"invalid YAML: {context} that starts here; {problem} "
                   f"(parsing stopped at line {stop_line})")
        return YamlSyntaxError(message, file, context_line, hint=_HINT)
    quote_line = _runaway_quote(text, stop) if stop is not None else None
    if quote_line is not None:
        message = (f"invalid YAML: the quoted value that starts here runs over several lines, "
                   f"so its closing quote is probably missing (parsing stopped at line "
                   f"{stop_line}: {context}; {problem})")
        return YamlSyntaxError(message, file, quote_line,
                               hint="Add the closing quote on this line.")
    message = f"invalid YAML: {context} (which starts at line {context_line}); {problem}"
    return YamlSyntaxError(message, file, stop_line, hint=_HINT)

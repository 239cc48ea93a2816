"""The exception types the CLI turns into exit codes: bad input (one line, exit 2) and a requested stop
(SIGTERM/SIGUSR1 before a cluster preempts the job: one line, exit 75)."""

from __future__ import annotations

import os

EXIT_BAD_INPUT = 2
EXIT_PREEMPTED = 75  # sysexits.h EX_TEMPFAIL: "temporary failure, try again" (a scheduler may requeue)


class VlkdError(Exception):
    """A problem with the user's input (file, config, data), reported as `path: problem` on one line: a line
    break quoted from the input (a header, a field) is shown escaped, as `\\n`."""

    def __init__(self, problem: str, path: str | os.PathLike | None = None) -> None:
        self.path = None if path is None else _one_line(os.fspath(path))
        self.problem = _one_line(problem)
        super().__init__(f"{self.path}: {self.problem}" if self.path else self.problem)


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


class Preempted(Exception):
    """The process was asked to stop (SIGTERM or SIGUSR1) and stopped cleanly at a resumable point; the
    message says where and how to continue."""

"""What envci prints: progress on stderr, one result on stdout (text for people, JSON for machines).

Everything passes through the redactor, so a secret that reached a message never reaches a log.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

from envci.redact import redact


class Reporter:
    def __init__(self, mode: str = "text", *, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.mode = mode
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.start = time.monotonic()

    def progress(self, message: str) -> None:
        elapsed = time.monotonic() - self.start
        print(redact(f"[{elapsed:6.1f}s] {message}"), file=self.err, flush=True)

    def warn(self, message: str) -> None:
        print(redact(f"warning: {message}"), file=self.err, flush=True)

    def error(self, message: str) -> None:
        """The one line a failed command ends with; error messages quote API answers and tool
        output, which may hold a secret, so they are redacted like everything else."""
        print(redact(message), file=self.err, flush=True)

    def result(self, data: dict[str, Any], text: str) -> None:
        if self.mode == "json":
            print(redact(json.dumps(data, indent=2, sort_keys=True, default=str)), file=self.out, flush=True)
        else:
            print(redact(text.rstrip("\n")), file=self.out, flush=True)

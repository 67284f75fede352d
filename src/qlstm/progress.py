"""A dependency-free progress bar for long loops (training epochs, benchmarks)."""

from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator, TextIO, TypeVar

T = TypeVar("T")

__all__ = ["Progress"]


class Progress:
    """Wrap an iterable and redraw ``desc [#####.....] i/N elapsed postfix`` on one line.

    On a terminal the line is redrawn in place; otherwise (logs, CI) a line is
    printed about every ``log_every`` seconds so output stays short.

    >>> bar = Progress(range(3), desc="epoch")
    >>> for _ in bar:
    ...     bar.set_postfix(loss=0.1)
    """

    def __init__(self, iterable: Iterable[T], total: int | None = None, desc: str = "", *,
                 file: TextIO | None = None, width: int = 24, log_every: float = 5.0, disable: bool = False):
        self.iterable = iterable
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.desc, self.width, self.log_every, self.disable = desc, width, log_every, disable
        self.file = file if file is not None else sys.stderr
        self.postfix = ""
        self.count = 0
        self._start = self._last = time.perf_counter()
        self._tty = hasattr(self.file, "isatty") and self.file.isatty()

    def set_postfix(self, **values) -> None:
        """Show ``key=value`` pairs after the bar (floats with 4 significant digits)."""
        self.postfix = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())

    def _line(self) -> str:
        elapsed = time.perf_counter() - self._start
        if self.total:
            done = int(self.width * self.count / self.total)
            bar = "[" + "#" * done + "." * (self.width - done) + "]"
            return f"{self.desc} {bar} {self.count}/{self.total} {elapsed:.1f}s {self.postfix}".rstrip()
        return f"{self.desc} {self.count} {elapsed:.1f}s {self.postfix}".rstrip()

    def _draw(self, final: bool = False) -> None:
        if self.disable:
            return
        now = time.perf_counter()
        if self._tty:
            self.file.write("\r" + self._line() + ("\n" if final else ""))
            self.file.flush()
        elif final or now - self._last >= self.log_every:
            self.file.write(self._line() + "\n")
            self.file.flush()
            self._last = now

    def __iter__(self) -> Iterator[T]:
        for item in self.iterable:
            yield item
            self.count += 1
            self._draw()
        self._draw(final=True)

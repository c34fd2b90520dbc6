"""A checkpoint written by a forked child, so that the loop stops only for the fork.

Encoding 20,000 streams' detector state and writing it to Redis is about 250 ms of one
core, most of it per-stream Python; with the loop doing it, every checkpoint stopped
the reading for that long, and the stop grows with the streams a process holds.  So,
like Redis's ``BGSAVE``, the processor forks: the child holds a copy-on-write image of
every partition as it stood at the checkpoint, encodes and saves it, reports, and
exits; the parent reads on at once, and commits the offsets only once the child says
the save landed.  What a crash can lose is unchanged: the events after the last save
that landed are read again onto exactly the state that preceded them.

The child runs one callable and hands back its result (pickled, through a pipe); it
touches nothing of the parent's but that callable's objects (no Kafka client, no
metrics server: only the thread that forked runs in it) and leaves with ``os._exit``,
so no exit handler or buffered output of the parent runs twice.  Its own Redis
connections are new: redis-py's connection pools reconnect in a process whose pid
changed.  SIGINT and SIGTERM are ignored in the child: a Ctrl-C or a ``kill`` of the
process group stops the parent, which waits for the save in flight on its way out.
A child that dies, hangs past its deadline (then it is killed) or raises reports a
:class:`~riskstream.errors.StateStoreError` to the parent, which claims its
partitions again, as after any failed save.

A child never outlives its parent: on Linux the kernel kills it the moment the thread
that forked it ends (``PR_SET_PDEATHSIG``), elsewhere its own alarm ends it at its
deadline.  An orphaned writer would otherwise hold everything the parent had open,
the metrics port among them, so a processor restarted at once after a ``kill -9``
could not bind it; and its save, were it to land, would only be fenced off by the
processor that claimed the partitions since.  And when memory runs short (a writer's
copied pages come on top of the processor's), Linux's OOM killer is told to take the
writer first: losing it costs a re-claim, losing the processor a restart.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import logging
import math
import os
import pickle
import select
import signal
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

from riskstream.errors import StateStoreError

__all__ = ["ForkedSave"]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class ForkedSave:
    """One callable running in a forked child; its result, read back in the parent.

    >>> save = ForkedSave(lambda: sum(range(10)), deadline_s=30)
    >>> save.wait()
    45
    >>> try:
    ...     ForkedSave(lambda: 1 / 0, deadline_s=30).wait()
    ... except StateStoreError as exc:
    ...     print(exc)
    the checkpoint writer (a forked process) failed: ZeroDivisionError: division by zero
    """

    def __init__(self, work: Callable[[], Any], deadline_s: float) -> None:
        self.started = time.monotonic()
        self._deadline = self.started + deadline_s
        read, write = os.pipe()
        parent = os.getpid()
        prctl = _prctl()
        with warnings.catch_warnings():
            # Python 3.12+ warns that forking a process with threads may deadlock the
            # child on a lock some other thread held.  The child here runs only
            # ``work`` (in the thread that forked: it holds the GIL) and exits; it never
            # enters librdkafka or the metrics server, whose threads are the others.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: never returns
            _child(work, read, write, parent, prctl, deadline_s)
        os.close(write)
        os.set_blocking(read, False)
        self.pid = pid
        self._fd: int | None = read
        self._data = bytearray()
        self._status: int | None = None
        self._deadline_s = deadline_s
        self._timed_out = False
        self.finished: float | None = None

    def done(self) -> bool:
        """Whether the child has finished (reads what it wrote so far; never blocks)."""
        if self._fd is not None:
            self._read()
            if self._fd is not None and time.monotonic() > self._deadline:
                self._kill()
        return self._fd is None

    def wait(self) -> Any:
        """The child's result, waiting up to its deadline for it (then it is killed).

        Raises :class:`StateStoreError` when the child failed or did not finish.
        """
        while self._fd is not None:
            left = self._deadline - time.monotonic()
            if left <= 0:
                self._kill()
                break
            select.select([self._fd], [], [], min(left, 1.0))
            self._read()
        return self.result()

    def result(self) -> Any:
        """What the child returned; only once :meth:`done` (raises like :meth:`wait`)."""
        assert self._fd is None, "the forked save has not finished"
        try:
            outcome, value = pickle.loads(bytes(self._data)) if self._data else (None, None)
        except Exception as exc:  # cut short: it died while writing
            outcome, value = None, f"({type(exc).__name__} reading its report)"
        if outcome == "ok":
            return value
        if outcome == "failed":
            raise StateStoreError(f"the checkpoint writer (a forked process) failed: {value}")
        if self._timed_out:
            raise StateStoreError(
                f"the checkpoint writer (pid {self.pid}) did not finish within "
                f"{self._deadline_s:g} s and was killed (is the state store answering?)"
            )
        raise StateStoreError(
            f"the checkpoint writer (pid {self.pid}) ended without a report: "
            f"{_status_text(self._status)}{'' if value is None else ' ' + value}"
        )

    def _read(self) -> None:
        assert self._fd is not None
        while True:
            try:
                chunk = os.read(self._fd, 1 << 20)
            except BlockingIOError:
                return
            if not chunk:
                break
            self._data += chunk
        os.close(self._fd)
        self._fd = None
        self._reap()

    def _kill(self) -> None:
        self._timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._data.clear()
        self._reap()

    def _reap(self) -> None:
        _, status = os.waitpid(self.pid, 0)
        self._status = status
        self.finished = time.monotonic()


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """Linux's ``prctl``, looked up in the parent (the child only calls it), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


def _child(
    work: Callable[[], Any],
    read: int,
    write: int,
    parent: int,
    prctl: Callable[..., int] | None,
    deadline_s: float,
) -> None:
    code = 0
    try:
        # Short-lived: a garbage collection would only write to (and so copy) pages
        # of the parent's heap that the child otherwise just reads.
        gc.disable()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)  # a handler of the parent's is not ours
        # Die with the parent (see the module docstring): the kernel's signal on Linux,
        # then a check for a parent that died before it was asked for, and the alarm
        # (SIGALRM ends a process) for where neither exists; the parent kills it at
        # the deadline anyway.
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)
        signal.alarm(math.ceil(deadline_s) + 1)
        # Under memory pressure (the child's copied pages are on top of the parent's),
        # the kernel's OOM killer should take the writer, whose loss costs a re-claim,
        # not the processor (Linux; raising one's own score needs no privilege).
        with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as oom:
            oom.write("1000")
        os.close(read)
        try:
            report = pickle.dumps(("ok", work()), protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as exc:
            if not isinstance(exc, StateStoreError):  # a bug, not the store: where it was
                log.error("the checkpoint writer failed", exc_info=True)
            report = pickle.dumps(("failed", f"{type(exc).__name__}: {exc}"))
        view = memoryview(report)
        while view:
            view = view[os.write(write, view) :]
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _status_text(status: int | None) -> str:
    if status is None:
        return "status unknown"
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"

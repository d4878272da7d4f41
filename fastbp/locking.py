"""``ReadWriteLock``: many readers or one writer, and neither side starves.

The model's readers (``predict``, ``evaluate``, ``get_weights``, ``save``) may run together;
a writer (a chunk of ``fit``, ``train_step``, ``loss_and_grads``, ``set_weights``) runs alone,
so every reader sees the state between two writes, never half of one.  A writer waits for
the readers inside; readers that arrive while a writer waits queue behind it; and when a
writer leaves, every reader that was waiting goes in before the next writer (``fit`` takes
the write side once per compiled chunk, so a reader waits for at most one chunk).
"""

import contextlib
import threading

__all__ = ["ReadWriteLock"]


class ReadWriteLock:
    def __init__(self):
        self._cond = threading.Condition()
        self._readers = 0  # inside
        self._writer = False  # inside
        self._waiting_readers = 0
        self._waiting_writers = 0
        self._readers_first = 0  # readers to let in before the next writer

    @contextlib.contextmanager
    def reading(self):
        with self._cond:
            self._waiting_readers += 1
            while self._writer or (self._waiting_writers and not self._readers_first):
                self._cond.wait()
            self._waiting_readers -= 1
            self._readers_first = max(0, self._readers_first - 1)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def writing(self):
        with self._cond:
            self._waiting_writers += 1
            while self._writer or self._readers or self._readers_first:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._readers_first = self._waiting_readers
                self._cond.notify_all()

"""``ReadWriteLock``: many readers or one writer, and neither side starves; ``Exclusive``:
one thread at a time changes a model.

The model's readers (``predict``, ``evaluate``, ``get_weights``, ``save``) may run together;
a writer (a chunk of ``fit``, ``train_step``, ``loss_and_grads``, ``set_weights``) runs alone,
so every reader sees the state between two writes, never half of one.  A writer waits for
the readers inside; readers that arrive while a writer waits queue behind it; and when a
writer leaves, every reader that was waiting goes in before the next writer (``fit`` takes
the write side once per compiled chunk, so a reader waits for at most one chunk).
"""

import threading

__all__ = ["ReadWriteLock", "Exclusive"]


class ReadWriteLock:
    """``with lock.reading():`` / ``with lock.writing():`` (plain context-manager objects, not
    generators: this sits on every ``predict`` and ``train_step`` call)."""

    def __init__(self):
        # ``with self._mutex`` rather than ``with self._cond``: the same lock (the condition's),
        # taken in C instead of through Condition's Python ``__enter__`` (twice per predict)
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)
        self._readers = 0  # inside
        self._writer = False  # inside
        self._waiting_readers = 0
        self._waiting_writers = 0
        self._readers_first = 0  # readers to let in before the next writer
        self._reading, self._writing = _Reading(self), _Writing(self)

    def reading(self):
        return self._reading

    def writing(self):
        return self._writing

    def acquire_read(self):
        with self._mutex:
            if self._writer or self._waiting_writers:
                self._waiting_readers += 1
                while self._writer or (self._waiting_writers and not self._readers_first):
                    self._cond.wait()
                self._waiting_readers -= 1
                self._readers_first = max(0, self._readers_first - 1)
            self._readers += 1

    def release_read(self):
        with self._mutex:
            self._readers -= 1
            if not self._readers and self._waiting_writers:
                self._cond.notify_all()

    def acquire_write(self):
        with self._mutex:
            self._waiting_writers += 1
            while self._writer or self._readers or self._readers_first:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writer = True

    def release_write(self):
        with self._mutex:
            self._writer = False
            self._readers_first = self._waiting_readers
            if self._waiting_readers or self._waiting_writers:
                self._cond.notify_all()


class _Reading:
    __slots__ = ("lock",)

    def __init__(self, lock):
        self.lock = lock

    def __enter__(self):
        self.lock.acquire_read()

    def __exit__(self, *exc):
        self.lock.release_read()


class _Writing(_Reading):
    __slots__ = ()

    def __enter__(self):
        self.lock.acquire_write()

    def __exit__(self, *exc):
        self.lock.release_write()


class Exclusive:
    """``with Exclusive(training, access, whole):`` — refuse (``RuntimeError``) a second thread
    that tries to change a model while another one does (``training``: a ``threading.Lock``
    held while any call changes the model), and, when ``whole``, hold ``access``'s write side
    throughout (else the caller takes it for each consistent step itself: ``fit``'s chunks).
    A plain object, not a generator context manager: it sits on every ``train_step``."""

    __slots__ = ("training", "access", "whole")

    def __init__(self, training, access, whole):
        self.training, self.access, self.whole = training, access, whole

    def __enter__(self):
        if not self.training.acquire(blocking=False):
            raise RuntimeError(
                "this model is being trained or modified in another thread; train a model from one thread "
                "at a time (predict and evaluate may be called from several threads)"
            )
        if self.whole:
            try:
                self.access.acquire_write()
            except BaseException:
                self.training.release()
                raise

    def __exit__(self, *exc):
        try:
            if self.whole:
                self.access.release_write()
        finally:
            self.training.release()

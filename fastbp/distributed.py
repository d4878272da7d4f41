"""Data-parallel training over MPI.

``fit(model, X_shard, y_shard, comm, ...)`` trains one model replicated on every rank of
``comm`` (an ``mpi4py`` communicator), each rank holding a shard of the rows::

    from mpi4py import MPI
    import fastbp, fastbp.distributed
    model = fastbp.MLP([784, 256, 10], seed=0)         # same configuration on every rank
    fastbp.distributed.fit(model, X_shard, y_shard, MPI.COMM_WORLD, epochs=5, batch_size=128)

**What a run is equivalent to.**  The global data set is the shards concatenated in rank
order (rank 0's rows, then rank 1's, ...), ``N`` rows.  Rank 0's parameters, optimizer state,
state record (step count, dropout key) and shuffle generator are broadcast first, so every
rank starts as rank 0's model.  Each epoch every rank draws the same order of the ``N``
global rows from that generator (``training.epoch_orders``: exactly the draws
``model.fit`` makes), and the global mini-batches are that order cut into ``batch_size``
rows, ``batch_size`` being the **global** batch (within a batch the rows are taken in rank
order: rank 0's, then rank 1's ..., which changes the sum's rounding only, and dropout's masks).  Each rank computes the gradient of the
rows of the global batch it holds (in the global order), scaled by its rows / the global
batch's rows (a rank may hold none of a batch: a zero gradient), the scaled gradients are
summed by one in-place ``Allreduce`` over the model's flat gradient buffer, and every rank
applies the same step from the sum (``kernels.apply_gradients``: the non-finite guard,
clipping, the update check and the fused update: the code ``train_epochs`` runs).  So a run
on P ranks equals, up to the rounding of the sum, ``model.fit(X_all, y_all,
batch_size=batch_size, shuffle=shuffle)`` of rank 0's model in one process, whatever the
shard sizes (``tests/test_distributed.py`` checks 1e-10 in float64).  Every rank takes the
same number of steps per epoch (``ceil(N / batch_size)``); a shard may hold no rows (that
rank takes part in every step with a zero gradient), as long as some rank's holds one.

**Settings that must agree.**  ``fit`` checks its arguments as ``model.fit`` does
(``fastbp.validation``), then one ``allgather`` compares, before anything changes, what
every rank must have the same: the model's configuration, ``epochs``, ``batch_size``,
``shuffle``, ``on_nonfinite``, whether there is an ``lr_schedule`` and ``validation_data``,
every field of ``early_stopping``, ``reduction`` and ``verify``.  The schedule's rates for an
epoch's steps are compared (a CRC-32, one ``allgather``) before the epoch.  A difference, or
arguments refused on some rank, raises ``ValueError`` on every rank naming the first setting
that differs (or the refused rank): no rank returns while another waits in a collective,
and no rank trains with rates or a stopping rule the others do not share.

**Bitwise agreement between ranks.**  Every rank applies the update to the same parameters
from the Allreduce's result, so ranks stay bitwise identical exactly when every rank gets
bitwise the same sum.  The MPI standard only advises this.  MPICH's allreduce algorithms for
a commutative built-in operation (recursive doubling, reduce-scatter + allgather, ring) give
each partner the same ``a + b`` (IEEE addition is commutative bit for bit) or compute each
chunk once and copy it, so the results agree; the test checks bitwise agreement for 2 and 3
ranks, and MPICH 5.0.2 gave every rank the same bits for 2 to 5 ranks under each of its
allreduce algorithms (README, "Data-parallel training over MPI").  ``verify`` (the default)
checks it after every epoch; ``reduction="reduce_bcast"`` (a ``Reduce`` to rank 0 then a
``Bcast``: two collectives, agreement by construction) is there for an MPI where it does not
hold.

**Loss and validation.**  ``fit`` returns a ``History`` as ``model.fit`` records it, the
same on every rank: each epoch's mean loss over the global rows of its applied batches and,
with ``validation_data`` (each rank's shard of the held-out rows), the validation loss and
accuracy of all ranks' rows together: one ``Allreduce`` of five numbers per epoch.

**Non-finite batches.**  A rank whose batch loss is NaN or inf puts a NaN into its gradient,
so the sum is not finite on every rank and every rank skips (``on_nonfinite="skip_batch"``)
or raises ``FloatingPointError`` (``"raise"``) at the same step.

**Dropout.**  The masks of a step are a function of each row's place in its batch
(``kernels.dropout``).  A rank draws its rows' masks at the places they take when the global
batch lists rank 0's rows first, then rank 1's, ... (each rank's in the drawn order;
``local_order``'s ``row0``).  Unshuffled, that is the order one process uses, and P ranks
equal one process with dropout too; shuffled, a batch holds the same rows as one process's
but their masks fall on other rows than in one process (as likely a draw; not the same).

**Batch norm: statistics per rank.**  A batch-normalised layer normalises each rank's rows
of a global batch with their own mean and variance (not synchronised: that would need a
reduction inside the forward pass), so a step's gradient is ``sum_r m_r / M * g_r`` with
``g_r`` the gradient of rank ``r``'s rows alone, as batch norm over ``m_r``-row batches.
Each rank moves its running averages with its own rows' statistics (a rank with none of a
batch's rows leaves them); after every epoch the ranks replace them by their mean (one
``Allreduce`` per batch-normalised layer and epoch), so the ranks agree again before
validation and ``verify``.  A batch whose statistics would make a running average NaN or inf
on one rank poisons the summed gradient, so every rank skips or raises together.
On one rank, all of this is ``model.fit`` bit for bit.

**Output and saving.**  ``verbose`` prints one line per epoch on rank 0 only; ``save``
writes the model from rank 0 only (every rank calls it; the others wait for the file).

**Memory.**  Nothing is allocated per step but Python scalars: both halves of the step work
in the model's buffers and the ``Allreduce`` is in place on its flat gradient
(``tests/test_distributed.py``); each epoch builds this rank's part of the order (two
``int64`` arrays of the epoch's rows and one of its batches).

**Speed.**  On one machine, ``model.fit``'s threads beat ranks (README, "Scaling: compute
against communication", with the measured share of the reduction per step and the
projection to N machines).
"""

from __future__ import annotations

import zlib
from time import perf_counter

import numpy as np

from . import compile_notice, kernels
from .kernels.codes import Hyper
from .kernels.optim import UNMEASURED
from .training import EarlyStopper, History, epoch_orders, epoch_rates
from .validation import (
    as_float_array,
    check_data,
    check_fit_counts,
    check_fit_options,
    check_flag,
    early_stopping_monitor,
    validation_pair,
)

__all__ = ["fit", "save", "broadcast_model", "local_order"]

# A cold compile is announced as fastbp.model announces its entry points' (times: float32, this
# project's 2-core machine while another process ran: 18.0 s and 17.3 s).
compile_notice.watch(kernels.batch_gradients, "the data-parallel gradient kernel", "~20 s")
compile_notice.watch(kernels.apply_gradients, "the data-parallel update kernel", "~20 s", array="net")


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:  # pragma: no cover - the extra is missing
        raise ImportError("fastbp.distributed needs mpi4py: pip install 'fastbp[mpi]'") from exc
    return MPI


def broadcast_model(model, comm, root=0):
    """Make every rank's ``model`` rank ``root``'s: parameters (batch norm's running averages
    included), optimizer state, the state record (step count, dropout key, position) and the
    shuffle generator.  The configurations must agree (checked: ``ValueError`` on every
    rank, naming the first setting that differs)."""
    try:
        _agree(comm, None, _config_settings(model), caller="fastbp.distributed.broadcast_model")
    except _Collective as exc:
        raise exc.error from None
    _broadcast_state(model, comm, root)


def _broadcast_state(model, comm, root):
    """``broadcast_model`` of a model whose configuration every rank has (checked)."""
    comm.Bcast(model._params_ext, root=root)
    comm.Bcast(model._slots_buf, root=root)
    comm.Bcast(model._state.view(np.uint8), root=root)
    model._rng.bit_generator.state = comm.bcast(model._rng.bit_generator.state, root=root)


def local_order(perm, offset, rows, batch_size):
    """This rank's part of a global epoch order: ``(order, starts, counts, row0)``, where
    ``order`` lists the local indices of the global rows ``offset .. offset + rows - 1`` in
    the order ``perm`` visits them, global batch ``k`` holds the ``counts[k]`` rows
    ``order[starts[k]:starts[k] + counts[k]]`` of this rank, and ``row0[k]`` is the number of
    the batch's rows held by lower ranks: this rank's rows are rows ``row0[k] ..`` of the
    global batch taken in rank order (their place for dropout's masks)."""
    cuts = np.arange(0, perm.size, batch_size)
    mine = (perm >= offset) & (perm < offset + rows)
    order = perm[mine] - offset
    counts = np.add.reduceat(mine.astype(np.int64), cuts)
    row0 = np.add.reduceat((perm < offset).astype(np.int64), cuts)
    starts = np.zeros_like(counts)
    np.cumsum(counts[:-1], out=starts[1:])
    return order, starts, counts, row0


class _Collective(Exception):
    """An error every rank raises at the same point (a wrapper: ``fit`` raises ``error``)."""

    def __init__(self, error):
        super().__init__(error)
        self.error = error


def _config_settings(model):
    """The model's configuration as ``(name, shown value)`` pairs, which must be the same on
    every rank (``_agree``)."""
    return [(f"the model's configuration ({key})", repr(value)) for key, value in model.get_config().items()]


def _agree(comm, error, settings, extra=None, caller="fastbp.distributed.fit"):
    """One ``allgather`` of every rank's ``error`` (the exception that refused this rank's
    arguments, or None), ``settings`` (``(name, shown value)`` pairs that must be the same on
    every rank) and ``extra``; returns the list of every rank's ``extra``.

    Raises ``_Collective`` on every rank, from the same gathered values, so every rank
    raises at once (no rank is left waiting in a later collective) and names the same cause:
    a refused rank its own error, the others a ``ValueError`` naming the first refused rank;
    else, for the first setting that differs from rank 0's, a ``ValueError`` naming it and
    the first rank where it differs (``caller`` opens the messages)."""
    size = comm.Get_size()
    gathered = comm.allgather((None if error is None else f"{type(error).__name__}: {error}", settings, extra))
    for rank, (refused, _, _) in enumerate(gathered):
        if refused is not None:
            raise _Collective(error if error is not None else ValueError(
                f"{caller}: rank {rank} of {size} refused its arguments ({refused}); every rank "
                f"must pass valid arguments, the same on every rank"))
    others = [dict(theirs) for _, theirs, _ in gathered[1:]]
    for name, shown in gathered[0][1]:
        for rank, theirs in enumerate(others, 1):
            other = theirs.get(name, "(not given)")
            if other != shown:
                raise _Collective(ValueError(
                    f"{caller}: {name} differs between ranks ({_clip(shown)} on rank 0, "
                    f"{_clip(other)} on rank {rank}); it must be the same on every rank"))
    return [extra for _, _, extra in gathered]


def _clip(shown, width=120):
    """``shown`` shortened for a message (a long list of a configuration, say)."""
    return shown if len(shown) <= width else shown[:width - 3] + "..."


def fit(model, X, y, comm, epochs=1, batch_size=32, shuffle=True, on_nonfinite="raise", lr_schedule=None,
        validation_data=None, early_stopping=None, verbose=0, reduction="allreduce", verify=True,
        abort_on_error=True, step_times=None):
    """Train ``model`` data-parallel over ``comm`` on this rank's shard ``(X, y)``; every rank
    calls it with the same model configuration, ``epochs``, ``batch_size`` (the global batch),
    ``shuffle`` and ``lr_schedule`` (a ``fastbp.schedules`` schedule, as in ``model.fit``: every
    rank computes the same rates from the same counts).  See the module's docstring for what a
    run is equivalent to.

    Returns a ``fastbp.training.History`` (the per-epoch losses; ``history.history`` with
    ``skipped_batches`` with ``on_nonfinite="skip_batch"``, ``lr`` with a schedule, and, with ``validation_data``, ``val_loss`` and, for classifiers,
    ``val_accuracy``), the same on every rank.  ``validation_data``: this rank's shard of the
    held-out rows (it may have none: ``(X[:0], y[:0])``); the metrics are those of all ranks'
    rows together (each rank's weighted by its rows; one ``Allreduce`` per epoch carries
    them with the training loss).  ``early_stopping``: ``model.fit``'s rule, decided on those
    metrics, which are bitwise the same on every rank, so every rank stops at the same epoch
    and restores the same parameters.

    ``X`` may have no rows on some ranks (not on all: ``ValueError``, as ``model.fit``
    refuses empty data); so may the held-out rows (``validation_data`` with no rows on any
    rank is refused likewise).

    The arguments are checked as ``model.fit`` checks them.  Errors every rank meets together
    are raised on every rank: arguments refused on some rank (that rank raises its error, the
    others a ``ValueError`` naming it), a setting that differs between ranks (the module's
    docstring lists them; a ``ValueError`` naming the first that differs), a non-finite step
    with ``on_nonfinite="raise"``.  Any other
    exception on one rank (bad data in its shard, Ctrl-C, a failure in the kernels) would
    leave the other ranks waiting in a collective forever: with ``abort_on_error`` (the
    default) that rank prints it to stderr, naming itself, and calls ``comm.Abort(1)``, which
    ends every process of the job (``mpiexec`` exits non-zero); without it the exception is
    raised on that rank only.

    ``verify`` (default): after every epoch the ranks compare a CRC-32 of their parameters and
    optimizer state (one ``allgather`` of an integer); ranks that are no longer bitwise
    identical (an MPI whose reduction does not give every rank the same bits: see the
    module's docstring) raise ``RuntimeError`` on every rank.

    ``verbose``: 1 prints a line per epoch (its metrics, the global rows per second) on rank 0
    only; the other ranks print nothing.  When ``on_nonfinite="raise"`` stops an epoch, every
    rank's shuffle generator goes back to the epoch's start (the steps before it stay
    applied): a next ``fit`` draws that epoch's order again and runs it from its first batch.

    ``step_times``: a list to which each step's ``(compute, reduce)`` seconds on this rank are
    appended (both halves of the step; the gradient's reduction), for
    ``benchmarks/distributed.py``."""
    MPI = _mpi()
    try:
        return _fit(MPI, model, X, y, comm, epochs, batch_size, shuffle, on_nonfinite, lr_schedule,
                    validation_data, early_stopping, verbose, reduction, verify, abort_on_error, step_times)
    except _Collective as exc:
        raise exc.error from None
    except BaseException as exc:
        if not abort_on_error:
            raise
        import sys
        import traceback
        sys.stderr.write(f"fastbp.distributed.fit: rank {comm.Get_rank()} of {comm.Get_size()} failed; "
                         f"aborting every rank:\n{''.join(traceback.format_exception(exc))}")
        sys.stderr.flush()
        comm.Abort(1)
        raise  # (not reached)


def save(model, path, comm, root=0):
    """Write ``model`` to ``path`` (``model.save``: atomically, checksummed) from rank ``root``
    only; every rank calls it, and returns once the file is written.  If the save fails, every
    rank raises: rank ``root`` its error, the others a ``RuntimeError`` quoting it."""
    error = None
    if comm.Get_rank() == root:
        try:
            model.save(path)
        except Exception as exc:  # (reported to every rank, then raised here)
            error = exc
    message = comm.bcast(None if error is None else f"{type(error).__name__}: {error}", root=root)
    if error is not None:
        raise error
    if message is not None:
        raise RuntimeError(f"fastbp.distributed.save: rank {root} could not write {str(path)!r}: {message}")


def _sum(MPI, comm, buf, reduction):
    """``buf`` <- its sum over the ranks, in place, the same bits on every rank."""
    if reduction == "allreduce":
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    else:
        root = comm.Get_rank() == 0
        comm.Reduce(MPI.IN_PLACE if root else buf, buf if root else None, op=MPI.SUM, root=0)
        comm.Bcast(buf, root=0)


def _check_shard(model, X, y):
    """``model``'s check of ``(X, y)`` (its compiled one), a shard of no rows allowed."""
    X = as_float_array(X, "X", model.dtype)
    if X.ndim == 2 and X.shape[0] == 0:
        return check_data(X, y, model.sizes, model.loss, model.dtype, allow_empty=True)
    return model._check_data(X, y)


def _checked_settings(model, epochs, batch_size, shuffle, on_nonfinite, lr_schedule, validation_data,
                      early_stopping, verbose, reduction, verify, abort_on_error):
    """``fit``'s arguments checked as ``model.fit`` checks them (``fastbp.validation``), and
    everything that must be the same on every rank as ``(name, shown value)`` pairs, in the
    order of ``fit``'s arguments.  The schedule and the validation data only by their presence
    (a function's repr differs between processes; the schedule's rates are compared per epoch),
    the early-stopping rule by every field."""
    check_fit_options(shuffle, on_nonfinite, lr_schedule, early_stopping, verbose)
    if on_nonfinite not in ("raise", "skip_batch"):
        raise ValueError(f"on_nonfinite must be 'raise' or 'skip_batch' here, got {on_nonfinite!r}")
    if reduction not in ("allreduce", "reduce_bcast"):
        raise ValueError(f"reduction must be 'allreduce' or 'reduce_bcast', got {reduction!r}")
    check_flag("verify", verify)
    check_flag("abort_on_error", abort_on_error)
    check_fit_counts(epochs, batch_size)
    early_stopping_monitor(early_stopping, validation_data is not None, model.is_classifier)
    if validation_data is not None:
        validation_pair(validation_data)
    model._check_optimizer()  # an optimizer rate changed since the last call (fit does the same)
    return _config_settings(model) + [
        ("epochs", repr(int(epochs))), ("batch_size", repr(int(batch_size))), ("shuffle", repr(bool(shuffle))),
        ("on_nonfinite", repr(on_nonfinite)), ("lr_schedule", "None" if lr_schedule is None else "a schedule"),
        ("validation_data", "None" if validation_data is None else "given"),
        ("early_stopping", repr(early_stopping)), ("reduction", repr(reduction)), ("verify", repr(bool(verify)))]


def _fit(MPI, model, X, y, comm, epochs, batch_size, shuffle, on_nonfinite, lr_schedule, validation_data,
         early_stopping, verbose, reduction, verify, abort_on_error, step_times):
    # Every check that could refuse a rank's arguments runs before the first collective, and
    # its outcome goes into it: ranks whose arguments are refused, or differ, all raise there
    # together instead of one returning and another waiting in a collective forever.
    error, settings, val = None, [], None
    try:
        settings = _checked_settings(model, epochs, batch_size, shuffle, on_nonfinite, lr_schedule,
                                     validation_data, early_stopping, verbose, reduction, verify, abort_on_error)
    except (TypeError, ValueError) as exc:
        error = exc
    if error is None:  # bad data in this rank's shard: this rank's error alone (see fit)
        X, T = _check_shard(model, X, y)
        if validation_data is not None:
            val = _check_shard(model, *validation_pair(validation_data))
    counts = _agree(comm, error, settings, None if error else (X.shape[0], 0 if val is None else val[0].shape[0]))
    sizes = [rows for rows, _ in counts]
    if sum(sizes) == 0:
        raise _Collective(ValueError("fastbp.distributed.fit: X is empty (0 samples) on every rank"))
    if val is not None and sum(rows for _, rows in counts) == 0:
        raise _Collective(ValueError("fastbp.distributed.fit: validation_data is empty (0 samples) on every rank"))
    if val is not None and val[0].shape[0] == 0:
        val = None  # (this rank adds nothing to the validation metrics)
    monitor = early_stopping_monitor(early_stopping, validation_data is not None, model.is_classifier)
    stopper = None if early_stopping is None else EarlyStopper(early_stopping, monitor)
    rows = X.shape[0]
    rank = comm.Get_rank()
    N, offset = sum(sizes), sum(sizes[:rank])
    B = min(int(batch_size), N)
    _broadcast_state(model, comm, 0)

    grads = model._grads
    running = [model._params_ext[lay["running"]:lay["running"] + 2 * lay["n_out"]]
               for lay in model._layers if lay["running"] >= 0]  # batch norm's running averages (views)
    state = model._state
    st = state[0]
    h = model._hyper
    lr = Hyper(*h).lr
    bounds = (0.0, 0.0, 0.0, UNMEASURED)  # the update check's bounds, carried from step to step
    local_rows = max(1, min(B, rows))
    ws = model._train_workspace(local_rows)
    cfg, guard = model._call(local_rows)
    totals = np.zeros(5)  # per epoch: loss x rows, rows; validation loss x rows, correct share x rows, rows
    history = History()
    n_batches = (N + B - 1) // B
    with guard:
        for epoch in range(1, int(epochs) + 1):
            rates = _epoch_rates(comm, lr_schedule, model, N, B, shuffle, n_batches)
            drawn_from = model._rng.bit_generator.state
            perm = epoch_orders(model._rng, 1, N, shuffle)[0]
            started = perf_counter()
            order, starts, counts, row0 = local_order(perm, offset, rows, B)
            totals[:] = 0.0
            for k in range(n_batches):
                m_global = min(B, N - k * B)
                m = int(counts[k])
                t0 = perf_counter()
                loss = kernels.batch_gradients(model._net, state, ws, X, T, order, int(starts[k]), m, int(row0[k]),
                                               m / m_global, cfg)
                t1 = perf_counter()
                _sum(MPI, comm, grads, reduction)
                t2 = perf_counter()
                rate = rates[k] if rates.size else lr
                applied, bounds = kernels.apply_gradients(model._net, state, ws, m, rate, cfg, h, bounds)
                if step_times is not None:
                    step_times.append((t1 - t0 + perf_counter() - t2, t2 - t1))
                st["batches"] += 1
                if applied:
                    totals[0] += loss * m
                    totals[1] += m
                elif on_nonfinite == "raise":
                    model._rng.bit_generator.state = drawn_from  # (fit's rule: the epoch's order is drawn again)
                    raise _Collective(FloatingPointError(
                        f"fastbp.distributed.fit: the gradient of epoch {int(st['epoch']) + 1}, batch {k} "
                        f"(layer {int(st['bad_layer'])}) is NaN or inf on some rank (status {int(st['status'])}); "
                        f"the step was not applied on any rank"))
                else:
                    st["skipped"] += 1
            for r in running:  # each rank's running averages -> their mean over the ranks
                _sum(MPI, comm, r, reduction)
                r *= r.dtype.type(1.0 / comm.Get_size())
            if val is not None:
                val_loss, metrics = model._evaluate(*val)
                rows_v = val[0].shape[0]
                totals[2:] = val_loss * rows_v, metrics.get("accuracy", 0.0) * rows_v, rows_v
            comm.Allreduce(MPI.IN_PLACE, totals, op=MPI.SUM)
            metrics = {"loss": float(totals[0] / totals[1]) if totals[1] > 0 else float("nan")}  # as fit records them
            if on_nonfinite == "skip_batch":
                metrics["skipped_batches"] = int(st["skipped"])
            if rates.size:
                metrics["lr"] = float(rates[-1])  # the epoch's last rate
            if validation_data is not None:
                metrics["val_loss"] = float(totals[2] / totals[4])
                if model.is_classifier:
                    metrics["val_accuracy"] = float(totals[3] / totals[4])
            history._record(**metrics)
            if verbose and rank == 0:
                shown = " - ".join(f"{key} {value:.4g}" for key, value in metrics.items())
                print(f"epoch {epoch}/{int(epochs)} - {shown} - {N / max(perf_counter() - started, 1e-9):,.0f} "
                      f"samples/s over {comm.Get_size()} rank{'s' if comm.Get_size() > 1 else ''}", flush=True)
            if verify:
                digest = zlib.crc32(model._slots_buf.view(np.uint8), zlib.crc32(model._params_ext.view(np.uint8)))
                digests = comm.allgather(digest)
                if len(set(digests)) > 1:
                    raise _Collective(RuntimeError(
                        f"fastbp.distributed.fit: after epoch {int(st['epoch']) + 1} the ranks' parameters or "
                        f"optimizer state are no longer bitwise identical (CRC-32 by rank: {digests}); this MPI's "
                        f"Allreduce does not give every rank the same bits: use reduction='reduce_bcast'"))
            st["epoch"] += 1
            st["skipped"] = 0
            if stopper is not None and stopper.should_stop(metrics, epoch, model._params_ext, history):
                break
    if stopper is not None:
        stopper.restore_best(model._params_ext)
    return history


def _epoch_rates(comm, lr_schedule, model, n, batch_size, shuffle, n_batches):
    """The learning rates of the next epoch's batches (``training.epoch_rates``), compared
    between the ranks first (a CRC-32 of them, one ``allgather``): a schedule that gives
    other rates on some rank, or fails on some rank, raises on every rank before any of the
    epoch's steps (differing rates would otherwise make the ranks' weights drift apart)."""
    if lr_schedule is None:
        return epoch_rates(None, model, n, batch_size, shuffle, 1, n_batches)[0]
    error, shown, rates = None, [], None
    try:
        rates = epoch_rates(lr_schedule, model, n, batch_size, shuffle, 1, n_batches)[0]
    except Exception as exc:  # (a schedule is any callable: it may fail in any way, on one rank or all)
        error = exc
    if rates is not None:
        epoch = int(model._state[0]["epoch"]) + 1
        shown = [(f"lr_schedule (its rates for epoch {epoch})",
                  f"{float(rates[0])!r} .. {float(rates[-1])!r}, CRC-32 {zlib.crc32(rates.tobytes()):#010x}")]
    _agree(comm, error, shown)
    return rates

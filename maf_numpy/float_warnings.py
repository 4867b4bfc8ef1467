"""NumPy's floating-point warnings during training: collected, counted and reported in one message.

When a run goes wrong, NumPy reports each overflow, invalid operation (inf - inf, 0 * inf, NaN in a matmul)
and division by zero as a ``RuntimeWarning`` such as ``overflow encountered in exp``, pointing at an internal
line (a layer, autograd, NumPy itself): a dozen of them would stream out before ``fit`` says what happened.
:func:`maf_numpy.train.fit` and :func:`maf_numpy.vi.fit_vi` run their steps inside a :class:`FloatWarnings`
instead: it takes those warnings as they are raised (while the loss, its gradient, the Adam step and the
validation are computed), remembers the step and the phase of each, and the run reports them once, in its
divergence message or in one summary ``RuntimeWarning`` at the end (:func:`report`); the counts are kept in
``history["warnings"]`` (:func:`merge`).

Every other warning passes through unchanged, to the filters and the ``warnings.showwarning`` in force when
the run started: a user's DeprecationWarning, the library's UserWarnings and its own RuntimeWarnings (such as
"log_prob is not finite for ..."). Floating-point warnings raised in the caller's own functions (``fit``'s
``augment``, ``sampler`` and ``callback``, run inside :meth:`FloatWarnings.paused`) are shown too, once per
line of code and run (whatever the filters say: they are let through by the filter of the next paragraph).

How: ``warnings.catch_warnings()`` saves and restores the filters and ``showwarning``; inside it, one filter
makes NumPy's floating-point RuntimeWarnings ``"always"`` reach ``showwarning`` (so each is counted, not only
the first at each line; a caller's "ignore" or "error" filter for them applies to the run's one message
instead), and ``showwarning`` is replaced by a function that keeps those and hands any other warning on.
``numpy.errstate`` is left to the caller: under ``np.errstate(all="ignore")`` NumPy raises no warning to
collect, and under ``np.seterr(all="raise")`` the first overflow raises ``FloatingPointError`` with a
traceback to the line, the way to find where a run first overflowed. Like ``catch_warnings`` itself, this is
not thread-safe: two runs in two threads at once share the warning machinery.
"""

import contextlib
import re
import warnings

__all__ = ["FLOAT_WARNING", "is_float_warning", "FloatWarnings", "merge", "describe", "report"]

# NumPy's texts: "overflow encountered in exp", "invalid value encountered in matmul", "divide by zero
# encountered in log", "underflow encountered in multiply" ("... in scalar multiply" for NumPy scalars).
FLOAT_WARNING = r"(overflow|underflow|invalid value|divide by zero) encountered in "


def is_float_warning(message, category):
    """True for NumPy's floating-point RuntimeWarnings (matched at the start of the text, as the filter is)."""
    return issubclass(category, RuntimeWarning) and re.match(FLOAT_WARNING, str(message), re.I) is not None


class FloatWarnings:
    """``with FloatWarnings() as collector:`` takes NumPy's floating-point warnings raised inside.

    Set ``collector.step`` and ``collector.during`` (the phase: ``"loss and gradient"``, ``"Adam step"``,
    ``"validation"``) as the run moves on; each warning taken waits in ``collector.pending`` as
    ``(step, during, message)`` until :meth:`take`. Code that is not the library's runs inside
    ``collector.paused()``.
    """

    def __init__(self):
        self.step, self.during, self.pending = 0, "setup", []
        self._paused, self._shown, self._catcher, self._show_outside = False, set(), None, None

    def __enter__(self):
        self._catcher = warnings.catch_warnings()
        self._catcher.__enter__()
        self._show_outside = warnings.showwarning  # whatever shows warnings outside (pytest's recorder too)
        warnings.filterwarnings("always", message=FLOAT_WARNING, category=RuntimeWarning)
        warnings.showwarning = self._show
        return self

    def __exit__(self, *exc_info):
        return self._catcher.__exit__(*exc_info)

    @contextlib.contextmanager
    def paused(self):
        """Let the floating-point warnings of the caller's own code through (once per line) instead."""
        before, self._paused = self._paused, True
        try:
            yield
        finally:
            self._paused = before

    def take(self):
        """The warnings taken since the last call, as [(step, during, message)]."""
        pending, self.pending = self.pending, []
        return pending

    def _show(self, message, category, filename, lineno, file=None, line=None):
        if is_float_warning(message, category):
            if not self._paused:
                self.pending.append((self.step, self.during, str(message)))
                return
            if (str(message), filename, lineno) in self._shown:  # the filter above says "always": dedupe here
                return
            self._shown.add((str(message), filename, lineno))
        self._show_outside(message, category, filename, lineno, file, line)


def merge(records, pending):
    """``records`` (history["warnings"]) with ``pending`` added, as a new list: one dict per (message, phase)
    with ``message``, ``during``, ``count`` (times raised), ``first_step``, ``last_step`` and ``n_steps``
    (how many steps raised it). ``records`` is not changed (fit's states are never changed in place)."""
    if not pending:
        return records
    merged = {(record["message"], record["during"]): dict(record) for record in records}
    for step, during, message in pending:
        record = merged.get((message, during))
        if record is None:
            merged[message, during] = {"message": message, "during": during, "count": 1, "first_step": step,
                                       "last_step": step, "n_steps": 1}
            continue
        record["count"] += 1
        if step != record["last_step"]:  # steps only move forward
            record.update(last_step=step, n_steps=record["n_steps"] + 1)
    return list(merged.values())


def _steps(first, last, n):
    return f"at step {first}" if first == last else f"at {n} steps between {first} and {last}"


def describe(records, advice, limit=4):
    """One paragraph about ``records``: how many, at which steps and in which phase, the most frequent kinds,
    what they usually mean and what to try (``advice``)."""
    total = sum(record["count"] for record in records)
    first, last = min(r["first_step"] for r in records), max(r["last_step"] for r in records)
    phases = sorted({r["during"] for r in records})
    one_step, one_phase = first == last, len(phases) == 1

    def detail(r):
        said = ["once" if r["count"] == 1 else f"{r['count']} times"]
        said += [] if one_step else [_steps(r["first_step"], r["last_step"], r["n_steps"])]
        said += [] if one_phase else [f"in the {r['during']}"]
        return f"{r['message']} ({', '.join(said)})"

    kinds = sorted(records, key=lambda r: (-r["count"], r["first_step"]))
    listed = "; ".join(detail(r) for r in kinds[:limit])
    more = f"; and {len(kinds) - limit} other kinds" if len(kinds) > limit else ""
    at = f"at step {first}" if one_step else f"between steps {first} and {last}"
    where = f", in the {phases[0]}" if one_phase else ""
    return (f"NumPy raised {total} floating-point warning{'s' if total > 1 else ''} {at}{where} (kept in "
            f"history['warnings'], not printed one by one): {listed}{more}. {advice}")


def report(history, what, advice, stacklevel):
    """Warn once for a run: its divergence message (which already describes the float warnings), or a
    summary of the float warnings of a run that did not diverge (``what``: "training", "VI"). Nothing when
    there is nothing to say. ``stacklevel`` counts from the caller of ``report``."""
    if history["status"] == "diverged":
        warnings.warn(history["message"], RuntimeWarning, stacklevel=stacklevel + 1)
    elif history.get("warnings"):
        status = history["status"].replace("_", " ")
        warnings.warn(f"{what} {status} after {history['steps_run']} steps, but "
                      f"{describe(history['warnings'], advice)}", RuntimeWarning, stacklevel=stacklevel + 1)

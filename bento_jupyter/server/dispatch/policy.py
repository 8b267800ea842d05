"""When to run a batch and whom to turn away: pure decisions over a clock reading, testable offline."""

from __future__ import annotations

import heapq
from enum import Enum
from typing import NamedTuple

TAIL_WINDOW = 256  # observations a tail estimate looks back on
TAIL_RANK = 3  # the 3rd largest of 256: their 99th percentile
TAIL_REFRESH = 32  # observations between two readings of the window
TAIL_HORIZON_S = 1.0  # ... and no further back than this: a past overload's outliers leave with it


class RecentTail:
    """The 99th percentile of the last 256 observations of the last second, read again every 32 (0 until then).

    Observations carry the time they were made (on the caller's clock; all at 0 when it passes none, which
    never expire): when a burst ends, its outliers stop counting within ``TAIL_HORIZON_S``, however few
    observations follow it.
    """

    def __init__(self) -> None:
        self.value = 0.0
        self._window: list[tuple[float, float]] = []  # a ring of (value, time)
        self._seen = 0

    def observe(self, x: float, now: float = 0.0) -> None:
        slot = self._seen % TAIL_WINDOW
        if slot < len(self._window):
            self._window[slot] = (x, now)
        else:
            self._window.append((x, now))
        self._seen += 1
        if self._seen % TAIL_REFRESH == 0:
            since = now - TAIL_HORIZON_S
            recent = [value for value, at in self._window if at >= since]
            # the 99th percentile of however many are recent: the largest of up to 85, the 3rd largest of 256
            rank = -(-len(recent) * TAIL_RANK // TAIL_WINDOW)
            self.value = heapq.nlargest(rank, recent)[-1] if recent else 0.0


class LinearFit:
    """``t(n) = base + per_item * n``, fitted online by exponentially weighted least squares."""

    def __init__(self, decay: float) -> None:
        self._decay = decay
        self._weight = self._x = self._y = self._xx = self._xy = 0.0
        self.observations = 0

    def observe(self, size: int, seconds: float) -> None:
        a = self._decay if self.observations else 1.0
        keep = 1.0 - a
        self._weight = keep * self._weight + a
        self._x = keep * self._x + a * size
        self._y = keep * self._y + a * seconds
        self._xx = keep * self._xx + a * size * size
        self._xy = keep * self._xy + a * size * seconds
        self.observations += 1

    def predict(self, size: int) -> float:
        """Seconds for ``size`` items (0 before any observation)."""
        if not self.observations:
            return 0.0
        mean_x, mean_y = self._x / self._weight, self._y / self._weight
        variance = self._xx / self._weight - mean_x * mean_x
        if variance <= 1e-9:
            return mean_y
        slope = max(0.0, (self._xy / self._weight - mean_x * mean_y) / variance)
        base = max(0.0, mean_y - slope * mean_x)
        return base + slope * size


class LatencyModel:
    """Predicts a batch's time from its size (a ``LinearFit``), and the gap between batches.

    Fitted online, so it follows a model that warms up or a machine that gets busier. The first
    ``warmup`` batches are ignored: a model's first call (lazy initialisation, allocator growth)
    says little about the next ones. Batches are timed on the event loop's clock, thread
    hand-offs included: that is what a queue waits. ``bound(n)`` adds the 99th percentile of
    recent batches' overrun of that fit (GIL waits, noisy neighbours).
    ``gap`` is the mean time from one batch's end to the next one's start while requests wait:
    the server reading requests, refusing some and writing answers, which a backlog's wait
    includes too. ``margin`` is what admission keeps free of the budget for what the fit does
    not see: the 99th percentile of how much later than expected recent answers reached their
    requests (thread hand-offs, task wake-ups), plus that of the event loop's turns, which a
    request waits through in its socket and in HTTP parsing before the server can time it.
    A cold start's outliers leave these windows after 256 observations, a past overload's after a second.
    """

    def __init__(self, decay: float = 0.1, warmup: int = 1) -> None:
        self._decay = decay
        self._warmup = warmup
        self._fit = LinearFit(decay)
        self.gap = 0.0
        self._overrun = RecentTail()
        self._lateness = RecentTail()
        self._loop_lag = RecentTail()

    @property
    def observations(self) -> int:
        return self._fit.observations

    def observe_gap(self, seconds: float) -> None:
        self.gap += self._decay * (seconds - self.gap)

    def observe_lateness(self, seconds: float, now: float = 0.0) -> None:
        """One answer's actual minus expected time in the server (at ``now``, the caller's clock)."""
        self._lateness.observe(seconds, now)

    def observe_loop_lag(self, seconds: float, now: float = 0.0) -> None:
        """One event-loop turn: from scheduling a callback to its run (at ``now``)."""
        self._loop_lag.observe(seconds, now)

    @property
    def margin(self) -> float:
        return max(0.0, self._lateness.value) + self._loop_lag.value

    def observe(self, size: int, seconds: float, now: float = 0.0) -> None:
        """One batch's time on the loop's clock (ending at ``now``)."""
        if self._warmup:
            self._warmup -= 1
            return
        if self._fit.observations:
            self._overrun.observe(seconds - self._fit.predict(size), now)
        self._fit.observe(size, seconds)

    def predict(self, size: int) -> float:
        """Seconds a batch of ``size`` items is expected to take (0 before any observation)."""
        return self._fit.predict(size)

    def bound(self, size: int) -> float:
        """Seconds that 99% of recent batches of ``size`` items stayed within."""
        return self.predict(size) + max(0.0, self._overrun.value)


class QueueState(NamedTuple):  # a tuple: built several times per request, so it must be cheap
    """What the dispatcher knows at one instant."""

    now: float
    queued_items: int
    oldest_arrival: float
    in_flight: int
    in_flight_remaining: float  # seconds until the earliest running batch should finish
    overloaded_until: float = float("-inf")  # a backlog was refused: late requests are until then


class Placement(Enum):
    """Where a request, or the queue as it stands, goes."""

    RUN = "run"  # the queue (with the arriving request) runs as a batch now
    WAIT = "wait"  # it waits for a batch: look again at ``wake_at``, or when a batch ends (None)
    REFUSE = "refuse"  # 503: the wait would exceed the budget; retry after ``retry_after`` seconds
    LATE = "late"  # 504: the request's deadline cannot be met


class Decision(NamedTuple):
    """A placement; ``overloaded_until``, when set, is the end of an overload window the caller keeps."""

    placement: Placement
    wake_at: float | None = None
    retry_after: float | None = None
    overloaded_until: float | None = None


_RUN = Decision(Placement.RUN)
_WAIT = Decision(Placement.WAIT)
_LATE = Decision(Placement.LATE)


class BatchPolicy:
    """Adaptive batching: never wait when the model is idle, fill batches while it is busy.

    * an idle model runs whatever is queued at once, so a lone client pays no batching delay;
    * while batches run, arrivals queue and the next batch takes everything that came in;
    * a spare pipeline slot (``max_concurrency`` > 1) waits for a full batch, but no longer than
      the oldest request's budget minus the batch's predicted run time;
    * once a backlog forms, a request whose predicted wait exceeds ``max_latency_ms`` is refused
      at the door (503), so the requests that are served stay inside their budget.

    ``decide`` is the one placement decision; it reads the latency model and changes nothing.
    """

    def __init__(
        self,
        max_batch_size: int,
        max_latency_s: float,
        max_concurrency: int,
        max_queue_items: int,
        latency: LatencyModel,
    ) -> None:
        self.max_batch_size = max_batch_size
        self.max_latency_s = max_latency_s
        self.max_concurrency = max_concurrency
        self.max_queue_items = max_queue_items
        self.latency = latency

    def decide(self, state: QueueState, arriving: int = 0, deadline: float | None = None) -> Decision:
        """Place a request of ``arriving`` items (0: the queue as it stands) whose answer is of no use
        after ``deadline`` (the state's clock; None: none).

        Rows, first match wins; rows 1-3 apply to an arrival (``arriving`` > 0) only while something is queued
        or every pipeline slot is busy (a free model refuses nobody), rows 5-8 count the arrival as queued:

        1. an arrival that overfills a non-empty queue (``max_queue_items``): REFUSE, retry after
           max(predicted wait, budget);
        2. an arrival whose wait + own batch + margin exceeds the budget, behind more than a batch of
           queued items (a backlog): REFUSE, retry after the wait, and open an overload window of one budget;
        3. such a late arrival that joins the next batch, inside an overload window: REFUSE;
        4. an admitted arrival whose predicted answer comes after ``deadline``: LATE;
        5. nothing queued, or every pipeline slot busy: WAIT (look again when a batch ends);
        6. no batch in flight (the model idle), or a full batch queued: RUN;
        7. a spare slot and the oldest request's budget leaves no time to wait for more: RUN;
        8. a spare slot and time left: WAIT until that latest start.

        At an arrival, RUN and WAIT both mean "queue it": the dispatcher runs batches when it asks again
        with ``arriving=0``, once the event loop has read every request already waiting.
        """
        queued = state.queued_items
        if arriving:
            if queued or state.in_flight >= self.max_concurrency:
                refusal = self._refusal(state, arriving)
                if refusal is not None:
                    return refusal
            if deadline is not None and state.now + self.predicted_time_in_server(state, arriving) > deadline:
                return _LATE
            queued += arriving
        if queued == 0 or state.in_flight >= self.max_concurrency:
            return _WAIT
        if state.in_flight == 0 or queued >= self.max_batch_size:
            return _RUN
        latest_start = state.oldest_arrival + self.max_latency_s - self.latency.bound(queued)
        if state.now >= latest_start:
            return _RUN
        return Decision(Placement.WAIT, wake_at=latest_start)

    def _refusal(self, state: QueueState, new_items: int) -> Decision | None:
        """Rows 1-3: a request is late when its wait plus its own batch's run, plus the latency model's
        margin, would exceed the budget. Overload is a backlog: a late request behind more than a batch
        of queued items is refused, and for one budget's length after that every late request is.
        Otherwise a request that joins the next batch is admitted even when late: that is slowness, and
        refusing it would only leave the batch emptier."""
        wait = self.predicted_wait(state, new_items)
        if state.queued_items + new_items > self.max_queue_items and state.queued_items:
            return Decision(Placement.REFUSE, retry_after=max(wait, self.max_latency_s))
        if wait + self._own_batch(state, new_items) + self.latency.margin <= self.max_latency_s:
            return None
        if state.queued_items + new_items > self.max_batch_size:
            return Decision(Placement.REFUSE, retry_after=wait, overloaded_until=state.now + self.max_latency_s)
        return Decision(Placement.REFUSE, retry_after=wait) if state.now < state.overloaded_until else None

    def _cycle(self, items: int) -> float:
        return self.latency.bound(items) + self.latency.gap

    def predicted_wait(self, state: QueueState, new_items: int) -> float:
        """Seconds a request of ``new_items`` would queue before its batch starts."""
        full_batches, rest = divmod(state.queued_items, self.max_batch_size)
        ahead = full_batches * self._cycle(self.max_batch_size)
        if rest and rest + new_items > self.max_batch_size:
            ahead += self._cycle(rest)
        busy = state.in_flight_remaining if state.in_flight >= self.max_concurrency else 0.0
        return busy + ahead / self.max_concurrency

    def _own_batch(self, state: QueueState, new_items: int) -> float:
        return self._cycle(min(self.max_batch_size, state.queued_items % self.max_batch_size + new_items))

    def predicted_time_in_server(self, state: QueueState, new_items: int) -> float:
        """Seconds from admitting a request of ``new_items`` to its answer: the wait, then its own batch."""
        return self.predicted_wait(state, new_items) + self._own_batch(state, new_items)

"""The mirror (issue 13): copy a sample of the live inference requests, after answering them, to the
candidate, and compare its answers with ours.

The live path pays for `sample` (a dict lookup and a random number) and, once the answer is
written, for `submit` (one request rendered and queued). The copy goes to
`<url>/v2/models/<model>/infer` carrying only the request's body and the headers that say how to
read it (`content-type`, `content-length`, `inference-header-content-length`, `content-encoding`)
plus `modeldeploy-mirror: 1`: nothing that identifies the caller (authorization, cookies,
x-forwarded-*, traceparent, x-request-id, ...) is ever copied, and a request that carries the
marker is never mirrored again. Answers 200 only are mirrored. The candidate's answer is compared
with ours by `agreement.compare`, and counted in the mirror metrics under the candidate's revision;
nothing the candidate does reaches the live answer, which has left already.

The mirror runs on the loop that serves live requests, on a budget (--mirror-max-loop-share,
default MIRROR_MAX_LOOP_SHARE): within each MIRROR_BUDGET_WINDOW_S it spends at most that share of
the time elapsed in the window, plus a tenth of the window's budget as a start, so copies are paced
rather than sent in bursts. Each copy is charged the loop thread's CPU time in the mirror's code
(rendering and sending it, reading and comparing the answer) plus MIRROR_COPY_IO_CHARGE_S for the
loop's I/O work on it. Past the budget, copies are dropped and counted: a busy pod mirrors a steady
sample rather than answer its live requests later.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from typing import Protocol

from modeldeploy.runtime import contract as c
from modeldeploy.runtime.agreement import AnswerError, Rules, compare, decode_answer
from modeldeploy.runtime.metrics import Value
from modeldeploy.runtime.mirrorclient import CandidateAnswer, CandidateClient
from modeldeploy.runtime.mirrormetrics import MirrorMetrics
from modeldeploy.runtime.podinfo import MirrorSettings

log = logging.getLogger("modeldeploy.runtime.mirror")

MARK = c.MIRROR_HEADER.encode()
_MARK_LINE = b"%s: %s\r\n" % (MARK, c.MIRROR_HEADER_VALUE.encode())
_HEADER_LEN = b"inference-header-content-length"
#: request headers the copy carries (how to read the body); every other header is left behind
_FORWARDED = (_HEADER_LEN, b"content-encoding")
_JSON = b"content-type: application/json\r\n"
_BINARY = b"content-type: application/octet-stream\r\n"


class LiveAnswer(Protocol):
    """What the mirror needs of a live answer (app.Response)."""

    status: int
    body: bytes
    headers: bytes


class Mirror:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        model_name: str,
        metrics: MirrorMetrics,
        rules: Rules,
        *,
        connections: int = c.MIRROR_CONNECTIONS,
        queue_size: int = c.MIRROR_QUEUE_SIZE,
        max_loop_share: float = c.MIRROR_MAX_LOOP_SHARE,
    ) -> None:
        self.loop = loop
        self.metrics = metrics
        self.base_rules = rules
        self.rules = rules
        self.connections = connections
        self.queue_size = queue_size
        self.path = c.infer_path(model_name).encode()
        self.settings: MirrorSettings | None = None
        self.client: CandidateClient | None = None
        self._fraction = 0.0
        self._head = b""
        self.share = max_loop_share
        #: spendable at the start of a window; the rest accrues with time, so copies go out paced
        self.credit_s = max_loop_share * c.MIRROR_BUDGET_WINDOW_S / 10
        self._window_start = 0.0
        self._spent = 0.0  # in submit, this window
        self._dropped = Value()

    # ------------------------------------------------------------------ settings

    def configure(self, settings: MirrorSettings | None) -> None:
        """Apply the mirror annotation's settings (None: off). A new address or timeout starts a new
        connection pool; copies the old one had not been answered are counted dropped."""
        old = self.settings
        if settings == old:
            return
        if self.client is not None and (
            settings is None or old is None or (settings.url, settings.timeout_s) != (old.url, old.timeout_s)
        ):
            self.client.close()
            self.client = None
        self.settings = settings
        if settings is None:
            self._fraction = 0.0
            log.info("mirror off")
            return
        self._fraction = settings.percent / 100.0
        self.rules = dataclasses.replace(
            self.base_rules, absolute=settings.absolute_tolerance, relative=settings.relative_tolerance
        )
        self._head = b"POST %s HTTP/1.1\r\nhost: %s\r\n" % (self.path, settings.url.removeprefix("http://").encode())
        if self.client is None:
            self.client = CandidateClient(
                self.loop,
                settings.host,
                settings.port,
                connections=self.connections,
                queue_size=self.queue_size,
                timeout_s=settings.timeout_s,
            )
        # every outcome at 0 from now on; the dropped counter at hand for the live path
        self._dropped = self.metrics.series(settings.candidate).outcomes[c.MIRROR_DROPPED]
        log.info(
            "mirror on: %g%% of answered requests to %s (candidate %s), timeout %g ms",
            settings.percent,
            settings.url,
            settings.candidate,
            settings.timeout_s * 1000,
        )

    def close(self) -> None:
        self.configure(None)

    # ------------------------------------------------------------------ the live path

    def sample(self, headers: dict[bytes, bytes]) -> bool:
        """Should this live request be copied? Never a copy; `percent` of the others, those past the
        window's budget counted dropped at once."""
        f = self._fraction
        if f <= 0.0 or MARK in headers:
            return False
        if f < 1.0 and random.random() >= f:  # sampling, not security
            return False
        t = time.perf_counter()
        client = self.client
        if t - self._window_start >= c.MIRROR_BUDGET_WINDOW_S:
            self._window_start = t
            self._spent = 0.0
            if client is not None:
                client.spent = 0.0
        elif client is not None and self._spent + client.spent > self.credit_s + self.share * (t - self._window_start):
            self._dropped.inc()
            return False
        return True

    def submit(self, body: bytes, headers: dict[bytes, bytes], live: LiveAnswer, live_seconds: float) -> None:
        """Queue the copy of a request whose answer `live` has been written."""
        settings, client = self.settings, self.client
        if settings is None or client is None or live.status != 200:
            return
        t0 = time.thread_time()
        head = [self._head]
        head.append(_BINARY if _HEADER_LEN in headers else _JSON)
        head.append(b"content-length: %d\r\n" % len(body))
        for name in _FORWARDED:
            value = headers.get(name)
            if value is not None:
                head.append(b"%s: %s\r\n" % (name, value))
        head.append(_MARK_LINE)
        head.append(b"\r\n")
        candidate = settings.candidate
        rules = self.rules

        def done(result: CandidateAnswer | str, dropped: bool) -> None:
            self._judge(candidate, rules, live, live_seconds, result, dropped)

        if not client.send(b"".join(head) + body, done):
            self.metrics.outcome(candidate, c.MIRROR_DROPPED)
        self._spent += time.thread_time() - t0 + c.MIRROR_COPY_IO_CHARGE_S

    # ------------------------------------------------------------------ the candidate's answer

    def _judge(  # noqa: PLR0917
        self,
        candidate: str,
        rules: Rules,
        live: LiveAnswer,
        live_seconds: float,
        result: CandidateAnswer | str,
        dropped: bool,
    ) -> None:
        m = self.metrics
        if dropped:
            m.outcome(candidate, c.MIRROR_DROPPED)
            return
        if isinstance(result, str):
            log.debug("mirror: candidate %s: %s", candidate, result)
            m.outcome(candidate, c.MIRROR_CANDIDATE_ERROR)
            return
        series = m.series(candidate)
        series.durations[c.ARM_STABLE].observe(live_seconds)
        series.durations[c.ARM_CANDIDATE].observe(result.seconds)
        if not 200 <= result.status < 300:
            log.debug("mirror: candidate %s answered %d", candidate, result.status)
            series.outcomes[c.MIRROR_CANDIDATE_ERROR].inc()
            return
        try:
            theirs = decode_answer(result.body, result.header_len)
        except AnswerError as e:
            log.debug("mirror: candidate %s: unreadable answer: %s", candidate, e)
            series.outcomes[c.MIRROR_CANDIDATE_ERROR].inc()
            return
        try:
            ours = decode_answer(live.body, live_header_len(live.headers))
        except AnswerError as e:  # our own answer: a bug, never the candidate's fault
            log.warning("mirror: cannot read the live answer: %s", e)
            series.outcomes[c.MIRROR_DROPPED].inc()
            return
        verdict = compare(ours, theirs, rules)
        for d in verdict.score_differences:
            series.score_difference.observe(d)
        if verdict.agreed:
            series.outcomes[c.MIRROR_AGREED].inc()
        else:
            log.debug("mirror: candidate %s disagreed: %s", candidate, verdict.why)
            series.outcomes[c.MIRROR_DISAGREED].inc()


def live_header_len(rendered: bytes) -> int | None:
    """The JSON header length of a live answer with binary outputs, from its rendered header lines."""
    i = rendered.find(_HEADER_LEN + b": ")
    if i < 0:
        return None
    j = rendered.find(b"\r\n", i)
    return int(rendered[i + len(_HEADER_LEN) + 2 : j if j >= 0 else None])

"""The Propexo client: one httpx client, Bearer auth, explicit timeouts, rate limits, retries.

Policy is layered over one narrow seam, :meth:`PropexoClient._send`, where httpx errors are
translated into :mod:`pipelines.core.errors` exactly once. Clock and sleep are injectable so tests
never really wait.

Retry rules (why they are safe):

* 429 means "not processed": always retried, after the rate-limit window allows.
* A connection that could not be opened never reached Propexo: retried with backoff.
* A 5xx, a reset or a timeout *after* a write was sent may have been applied: never retried here;
  the caller marks the record in doubt and resolves it by looking it up later.
* GETs are safe to retry on any transient failure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from pipelines.core.config import Secret, Settings, which_propexo
from pipelines.core.errors import (
    ApiError,
    ConfigError,
    PermanentApiError,
    TokenRefusedError,
    TransientApiError,
    UnreachableError,
)

MAX_ATTEMPTS = 6
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 30.0
DEFAULT_WINDOW_S = 60.0
PAGE_LIMIT = 250


@dataclass
class RateLimiter:
    """Paces requests from the ``x-ratelimit-*`` headers so that Propexo never has to say 429.

    Propexo reports the limit and what is left of the current window, but not when the window
    resets: a window is taken to start when the first answer showing a fresh budget arrives
    (Propexo counted that request, so began its window, no later than it answered), and to end
    ``window_s`` later, plus a small margin for the difference between our clock and theirs.
    Requests in flight count against the budget, so several threads can share one limiter and
    keep the rate up while Propexo holds each answer back by 2 s past 80% of the window.
    """

    window_s: float = DEFAULT_WINDOW_S
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    limit: int | None = None
    remaining: int | None = None
    window_started: float | None = None
    in_flight: int = 0
    lost: int = 0  # requests of this window that got no answer: counted as spent, on top
    rate_limited: int = 0
    _reset_at: float = float("-inf")
    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False)

    @property
    def margin_s(self) -> float:
        return max(0.01, 0.002 * self.window_s)

    def acquire(self) -> float:
        """Block until a request may be sent; returns the time it is sent at."""
        while True:
            with self._cond:
                now = self.clock()
                expired = self.window_started is not None and (
                    now - self.window_started >= self.window_s + self.margin_s
                )
                if expired and self.in_flight:
                    # Never let requests straddle a reset: their answers could not be told apart.
                    self._cond.wait(timeout=0.05)
                    continue
                if expired:
                    self._new_window(now)
                if self.remaining is None or self.window_started is None:
                    # One request opens each window, alone: its answer says the limit, and
                    # comes back before a burst's answers could delay it, so the window's start
                    # (taken from it) is known closely.
                    budget = 1 - self.in_flight
                else:
                    budget = self.remaining - self.in_flight - self.lost
                if budget > 0:
                    self.in_flight += 1
                    return now
                if self.in_flight:
                    # Answers in flight will tell us more; wait for one of them.
                    self._cond.wait(timeout=0.05)
                    continue
                # Spent: sleep until the window resets (the loop then starts a new one). Every
                # thread waits for the same moment; none may send before it.
                if self.window_started is None:
                    self.window_started = now
                pause = max(0.0, self.window_started + self.window_s + self.margin_s - now)
            self.sleep(pause)

    def handover(self, wall: Callable[[], float] = time.time) -> dict[str, Any]:
        """What the next process to talk to this integration must know of the budget: the
        limit, what is left, and when (wall clock) the current window started."""
        with self._cond:
            started = (
                None
                if self.window_started is None
                else wall() - (self.clock() - self.window_started)
            )
            return {
                "limit": self.limit,
                "remaining": None if self.remaining is None else max(0, self.remaining - self.lost),
                "window_started": started,
                "window_s": self.window_s,
            }

    def resume(self, state: dict[str, Any] | None, wall: Callable[[], float] = time.time) -> None:
        """Carry on from the budget another process handed over (:meth:`handover`): its window
        goes on, so this one must not take Propexo's budget as full. A window that has ended
        since leaves the budget to be learnt from the next answer, as at a start.

        A state still ``open`` was never handed over: its holder died mid-turn, having spent
        who knows what in windows nobody knows the start of. Every one of them has ended one
        window from now, so nothing is sent before then (a crash costs one window's wait)."""
        with self._cond:
            now = self.clock()
            self._reset_at = now  # answers to requests sent before this are not ours
            self.window_started, self.remaining, self.lost = None, None, 0
            if not state:
                return
            self.limit = state.get("limit") or self.limit
            if state.get("open"):
                self.window_started, self.remaining = now, 0
                return
            if state.get("window_started") is None:
                return
            age = wall() - float(state["window_started"])
            if 0 <= age < self.window_s + self.margin_s and state.get("remaining") is not None:
                self.window_started, self.remaining = now - age, int(state["remaining"])

    def _new_window(self, at: float) -> None:
        """Our estimate says Propexo's window has reset: the full budget is back."""
        self.window_started, self.remaining, self._reset_at = None, self.limit, at
        self.lost = 0

    def release(self, response: httpx.Response | None, sent_at: float) -> None:
        """A request finished (``response`` None when it never got one): learn from the headers."""
        with self._cond:
            self.in_flight -= 1
            if response is None:
                # No answer (a reset, a lost response): Propexo may well have counted it, and
                # no answer may ever say so. Counted as spent, apart from what the answers
                # say: an answer to a request Propexo took just before it does not include it.
                if sent_at >= self._reset_at:
                    self.lost += 1
            elif response.status_code == 429:
                # Spent, and we cannot know since when: wait a whole window from now.
                self.rate_limited += 1
                self.remaining, self.window_started, self.lost = 0, self.clock(), 0
            else:
                self._observe(response, sent_at)
            self._cond.notify_all()

    def _observe(self, response: httpx.Response, sent_at: float) -> None:
        try:
            limit = int(response.headers["x-ratelimit-limit"])
            remaining = int(response.headers["x-ratelimit-remaining"])
        except (KeyError, ValueError):
            return
        self.limit = limit
        if sent_at < self._reset_at:
            return  # an answer from the window we already left behind
        if self.window_started is None:
            # The first answer of a window: Propexo began it between this request's sending
            # and its answer, so now is the latest it can have started.
            self.window_started, self.remaining = self.clock(), remaining
        elif sent_at >= self.window_started + self.window_s and remaining > (self.remaining or 0):
            # A fresh budget before our estimate of the window's end: Propexo began a new one
            # no later than it answered this request.
            self.window_started, self.remaining, self.lost = self.clock(), remaining, 0
        else:
            # Answers can overtake each other: within a window the budget only shrinks.
            self.remaining = remaining if self.remaining is None else min(self.remaining, remaining)


@dataclass
class ClientStats:
    """Counters for reports and benchmarks."""

    requests: int = 0
    responses: int = 0
    writes: int = 0
    status_polls: int = 0
    log_reads: int = 0  # write-log pages and job requests read as evidence, not as polls
    retries: int = 0
    by_status: dict[int, int] = field(default_factory=dict)


class JobId(str):
    """A write's job id as its answer named it, with what the answer echoed of the request
    (``result``, or the generic envelope's ``data``; None when it echoed nothing): the answer's
    own account of which write it answers, checked against the request sent."""

    echo: Any

    def __new__(cls, job_id: str, echo: Any = None) -> JobId:
        made = super().__new__(cls, job_id)
        made.echo = echo
        return made


class PropexoClient:
    """Talks to Propexo (or the sandbox). Use as a context manager, or call :meth:`close`."""

    def __init__(
        self,
        base_url: str,
        token: Secret,
        *,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        limiter: RateLimiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token.reveal()}", "Accept": "application/json"},
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
            transport=transport,
        )
        self.limiter = limiter or RateLimiter(sleep=sleep)
        self._sleep = sleep
        self.stats = ClientStats()
        self._stats_lock = threading.Lock()

    def _count(self, name: str, status: int | None = None) -> None:
        with self._stats_lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)
            if status is not None:
                self.stats.by_status[status] = self.stats.by_status.get(status, 0) + 1

    def __enter__(self) -> PropexoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- the seam -------------------------------------------------------------------------------

    def _send(
        self, method: str, path: str, *, idempotent: bool = False, **kwargs: Any
    ) -> httpx.Response:
        """One request with pacing and safe retries; every httpx error is translated here.

        ``idempotent`` marks a POST that is safe to repeat (asking for a sync), so it is
        retried like a GET.
        """
        is_write = method != "GET" and not idempotent
        throttled: httpx.Response | None = None  # the last answer, when it was a 429
        throttles = 0
        for attempt in range(MAX_ATTEMPTS):
            sent_at = self.limiter.acquire()
            self._count("requests")
            try:
                response = self._http.request(method, path, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # The connection never opened: the request cannot have been applied. A refused
                # connection rarely heals in seconds: a few tries, then the next step to take.
                self.limiter.release(None, sent_at)
                if attempt + 1 >= CONNECT_ATTEMPTS:
                    url = str(self._http.base_url)
                    raise UnreachableError(
                        f"cannot connect to Propexo at {url} (after {CONNECT_ATTEMPTS} "
                        f"attempts): {unreachable_hint(url)}"
                    ) from exc
                self._backoff(attempt, f"cannot connect to Propexo at {self._http.base_url}", exc)
                continue
            except (httpx.TransportError, httpx.DecodingError) as exc:
                # DecodingError: an answer whose body cannot be decoded (a broken gzip).
                self.limiter.release(None, sent_at)
                if is_write:
                    raise TransientApiError(
                        f"no answer from Propexo after sending {method} {path} "
                        f"({type(exc).__name__})",
                        maybe_applied=True,
                    ) from exc
                self._backoff(attempt, f"{method} {path} failed", exc)
                continue
            self.limiter.release(response, sent_at)
            self._count("responses", response.status_code)
            throttled = response if response.status_code == 429 else None
            if response.status_code == 429:
                throttles += 1
                self._count("retries")
                continue
            if response.status_code >= 500:
                if is_write:
                    raise TransientApiError(
                        f"Propexo answered {response.status_code} to {method} {path}",
                        status_code=response.status_code,
                        maybe_applied=True,
                    )
                self._backoff(attempt, f"Propexo answered {response.status_code}", None)
                continue
            if response.status_code in (401, 403):
                raise TokenRefusedError(
                    f"Propexo refused the token ({response.status_code} "
                    f"{_error_text(response)}) on {method} {path}: check PROPEXO_API_TOKEN "
                    "(`tieout doctor` checks it), then run again",
                    status_code=response.status_code,
                )
            if response.status_code >= 400:
                raise PermanentApiError(
                    f"{method} {path}: {response.status_code} {_error_text(response)}",
                    status_code=response.status_code,
                )
            return response
        if throttled is not None:
            raise TransientApiError(self._rate_limited_text(method, path, throttled, throttles))
        raise TransientApiError(f"{method} {path}: gave up after {MAX_ATTEMPTS} attempts")

    def _rate_limited_text(
        self, method: str, path: str, answer: httpx.Response, throttles: int
    ) -> str:
        """What a run says when Propexo's rate limit still refuses after every attempt: that
        it is the rate limit, the budget, and when to try again (nothing was applied: a 429
        is "not processed")."""
        limit = answer.headers.get("x-ratelimit-limit") or self.limiter.limit
        window = self.limiter.window_s
        budget = f"{limit} requests per {window:g} s" if limit else f"per {window:g} s"
        after = answer.headers.get("retry-after", "")
        wait_s = float(after) if after.strip().isdigit() else window
        return (
            f"{method} {path}: Propexo's rate limit: answered 429 (too many requests) "
            f"to {throttles} of {MAX_ATTEMPTS} attempts; the budget is "
            f"{budget} for this integration, shared with anything else that uses it; nothing "
            f"was applied; try again in {wait_s:g} s or later"
        )

    def _backoff(self, attempt: int, message: str, exc: Exception | None) -> None:
        if attempt + 1 >= MAX_ATTEMPTS:
            raise TransientApiError(f"{message} (after {MAX_ATTEMPTS} attempts)") from exc
        self._count("retries")
        self._sleep(min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**attempt))

    # -- reads ----------------------------------------------------------------------------------

    def probe(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        """One GET whose response (status, headers) the caller reads: `tieout doctor`."""
        return self._send("GET", path, params=params)

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET one JSON object."""
        return _json(self._send("GET", path, params=params or {}))

    def iter_pages(
        self, path: str, params: dict[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every record of a list endpoint, paging with offset/limit until ``hasMore`` is false."""
        offset = 0
        while True:
            page = self.get(path, {**(params or {}), "offset": offset, "limit": PAGE_LIMIT})
            results = page.get("results") or []
            yield from results
            meta = page.get("meta") or {}
            offset += len(results)
            has_more = meta.get("hasMore")
            if has_more is None and meta.get("total") is not None:
                has_more = offset < int(meta["total"])
            elif has_more is None:  # neither is required: only a short page says it is the end
                has_more = len(results) >= PAGE_LIMIT
            if not results or not has_more:
                return

    def list_all(self, path: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return list(self.iter_pages(path, params))

    # -- writes ---------------------------------------------------------------------------------

    def post_write(self, path: str, body: dict[str, Any]) -> str:
        """POST a write and return its job id (accepts both documented envelopes), a
        :class:`JobId` that carries what the answer echoed of the request it answers.

        A 2xx that cannot be read (HTML, truncated JSON, an empty 204, no job id) says the
        request arrived and may have been applied: only this request's records are in doubt
        (``TransientApiError`` with ``maybe_applied``); the caller goes on with the others."""
        self._count("writes")
        response = self._send("POST", path, json=body)
        try:
            data = _json(response)
        except ApiError as exc:
            kind = response.headers.get("content-type", "no content type").split(";")[0]
            raise TransientApiError(
                f"POST {path}: Propexo answered {response.status_code} with a body that is not "
                f"the documented JSON ({kind}, {len(response.content)} bytes)",
                status_code=response.status_code,
                maybe_applied=True,
            ) from exc
        job_id = (data.get("meta") or {}).get("job_id") or data.get("job_id")
        if not isinstance(job_id, str) or not job_id:
            raise TransientApiError(
                f"POST {path}: the answer ({response.status_code}) has no job_id",
                status_code=response.status_code,
                maybe_applied=True,
            )
        echo = data.get("result") if "result" in data else data.get("data")
        return JobId(job_id, echo)

    def post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """A POST that moves no money (a webhook subscription); not retried after it is sent."""
        return _json(self._send("POST", path, json=body))

    def write_status(self, job_id: str) -> dict[str, Any]:
        """``GET /v1/admin/write-status/{job_id}``: write_status, errors, created_record_id."""
        self._count("status_polls")
        return self.get(f"/v1/admin/write-status/{job_id}")

    def write_logs(
        self,
        integration_id: str,
        *,
        offset: int = 0,
        limit: int = 100,
        time_range: str = "day",
        write_category: str | None = None,
        evidence: bool = False,
    ) -> list[dict[str, Any]]:
        """One page of ``GET /v1/admin/logs/writes/``: finished writes of every status in
        ``time_range`` (hour, day, week or month), newest first, optionally of one category.
        ``evidence``: read to settle doubt, not to follow jobs (counted apart from polls)."""
        self._count("log_reads" if evidence else "status_polls")
        params: dict[str, Any] = {
            "integration_id": integration_id,
            "time_range": time_range,
            "limit": limit,
            "offset": offset,
        }
        if write_category:
            params["write_category"] = write_category
        data = self.get("/v1/admin/logs/writes/", params)
        logs = (data.get("results") or {}).get("logs") or []
        return [entry for entry in logs if isinstance(entry, dict)]

    def job_log_data(self, job_log_id: str) -> dict[str, Any]:
        """A job's raw request and response: ``GET /v1/admin/job-logs/{id}/data`` answers with a
        302 to a presigned URL, which is fetched without the Authorization header (Propexo's
        docs: never forward it; the URL is its own credential)."""
        self._count("log_reads")
        answer = self._send("GET", f"/v1/admin/job-logs/{job_log_id}/data")
        if answer.status_code not in (301, 302, 303, 307, 308):
            return _json(answer)
        location = answer.headers.get("location")
        if not location:
            raise ApiError(f"job log {job_log_id}: a redirect without a location")
        request = self._http.build_request("GET", answer.url.join(location))
        request.headers.pop("Authorization", None)
        try:
            response = self._http.send(request)
        except httpx.TransportError as exc:
            raise TransientApiError(f"job log {job_log_id}: {type(exc).__name__}") from exc
        if response.status_code >= 400:
            raise ApiError(
                f"job log {job_log_id}: the presigned URL answered {response.status_code}",
                status_code=response.status_code,
            )
        return _json(response)

    def manual_sync(self, integration_id: str, models: list[str] | None = None) -> bool:
        """Ask Propexo to sync now (rehearsals; Propexo advises against routine use)."""
        body: dict[str, Any] = {"models_to_sync": models} if models else {}
        data = _json(
            self._send(
                "POST",
                f"/v1/admin/integrations/{integration_id}/manual-sync",
                json=body,
                idempotent=True,
            )
        )
        return bool((data.get("result") or {}).get("success"))


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError as exc:
        raise ApiError(
            f"{response.request.url.path}: the answer is not JSON", status_code=response.status_code
        ) from exc
    if not isinstance(data, dict):
        raise ApiError(
            f"{response.request.url.path}: unexpected answer", status_code=response.status_code
        )
    return data


def _error_text(response: httpx.Response) -> str:
    try:
        error = response.json().get("error") or {}
        return str(error.get("message") or error.get("code") or response.reason_phrase)
    except (ValueError, AttributeError):
        return response.reason_phrase


CONNECT_ATTEMPTS = 3


def unreachable_hint(base_url: str) -> str:
    """The next step when Propexo cannot be reached at all."""
    if which_propexo(base_url) == "sandbox":
        return (
            "is the sandbox running? Start it with `tieout sandbox` (or `make sandbox`), or "
            "check base_url with `tieout doctor`"
        )
    return "check base_url (PROPEXO_BASE_URL) and the network with `tieout doctor`"


def probe_integration(client: PropexoClient, integration_id: str) -> httpx.Response:
    """The smallest authenticated read that says whether the token is accepted and the
    integration known: one Rent Manager location."""
    return client.probe(
        "/v1/locations/rentmanager/", {"integration_id": integration_id, "limit": 1}
    )


def verify_token(client: PropexoClient, settings: Settings) -> None:
    """One small authenticated read; a refused token stops the command with the next step."""
    try:
        probe_integration(client, settings.integration_id)
    except PermanentApiError as exc:
        if exc.status_code in (401, 403):
            raise ConfigError(
                f"Propexo refused the token ({exc.status_code}): check PROPEXO_API_TOKEN; "
                "`tieout doctor` checks the whole setup"
            ) from exc
        raise


def make_client(settings: Settings, **kwargs: Any) -> PropexoClient:
    """The one place a client is built from settings."""
    kwargs.setdefault("limiter", RateLimiter(window_s=settings.rate_window_s))
    return PropexoClient(
        settings.base_url,
        settings.token,
        connect_timeout_s=settings.connect_timeout_s,
        read_timeout_s=settings.read_timeout_s,
        **kwargs,
    )

"""The Propexo client: one httpx client, Bearer auth, explicit timeouts, rate limits, retries.

Policy is layered over one narrow seam, :meth:`PropexoClient._send`, where httpx errors are
translated into :mod:`pipelines.errors` exactly once. Clock and sleep are injectable so tests
never really wait.

Retry rules (why they are safe):

* 429 means "not processed": always retried, after the rate-limit window allows.
* A connection that could not be opened never reached Propexo: retried with backoff.
* A 5xx, a reset or a timeout *after* a write was sent may have been applied: never retried here;
  the caller marks the record in doubt and resolves it by looking it up later.
* GETs are safe to retry on any transient failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from pipelines.config import Secret, Settings
from pipelines.errors import ApiError, PermanentApiError, TransientApiError

MAX_ATTEMPTS = 6
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 30.0
DEFAULT_WINDOW_S = 60.0
PAGE_LIMIT = 250


@dataclass
class RateLimiter:
    """Paces requests from the ``x-ratelimit-*`` headers so that Propexo never has to say 429.

    Propexo reports the limit and what is left of the current window but not when the window
    resets, so the window is taken to start at the first request that saw a fresh budget.
    """

    window_s: float = DEFAULT_WINDOW_S
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    limit: int | None = None
    remaining: int | None = None
    window_started: float | None = None
    waited_s: float = 0.0
    rate_limited: int = 0

    def before_request(self) -> None:
        """Wait, if the budget of the current window is spent, until the next window."""
        now = self.clock()
        if self.window_started is not None and now - self.window_started >= self.window_s:
            self.window_started, self.remaining = None, self.limit
        if self.remaining is not None and self.remaining <= 0:
            started = self.window_started if self.window_started is not None else now
            pause = max(0.0, started + self.window_s - now) + 0.05
            self.waited_s += pause
            self.sleep(pause)
            self.window_started, self.remaining = None, self.limit

    def observe(self, response: httpx.Response) -> None:
        """Learn the budget from a response's headers."""
        try:
            limit = int(response.headers["x-ratelimit-limit"])
            remaining = int(response.headers["x-ratelimit-remaining"])
        except (KeyError, ValueError):
            return
        if self.window_started is None or (
            self.remaining is not None and remaining > self.remaining
        ):
            self.window_started = self.clock()
        self.limit, self.remaining = limit, remaining

    def after_429(self) -> None:
        """A 429 means the budget is gone: nothing more until the window resets."""
        self.rate_limited += 1
        self.remaining = 0


@dataclass
class ClientStats:
    """Counters for reports and benchmarks."""

    requests: int = 0
    writes: int = 0
    status_polls: int = 0
    retries: int = 0
    by_status: dict[int, int] = field(default_factory=dict)


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

    def __enter__(self) -> PropexoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- the seam -------------------------------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request with pacing and safe retries; every httpx error is translated here."""
        is_write = method != "GET"
        for attempt in range(MAX_ATTEMPTS):
            self.limiter.before_request()
            self.stats.requests += 1
            try:
                response = self._http.request(method, path, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # The connection never opened: the request cannot have been applied.
                self._backoff(attempt, f"cannot connect to Propexo at {self._http.base_url}", exc)
                continue
            except httpx.TransportError as exc:
                if is_write:
                    raise TransientApiError(
                        f"no answer from Propexo after sending {method} {path} "
                        f"({type(exc).__name__})",
                        maybe_applied=True,
                    ) from exc
                self._backoff(attempt, f"{method} {path} failed", exc)
                continue
            self.limiter.observe(response)
            self.stats.by_status[response.status_code] = (
                self.stats.by_status.get(response.status_code, 0) + 1
            )
            if response.status_code == 429:
                self.limiter.after_429()
                self.stats.retries += 1
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
            if response.status_code >= 400:
                raise PermanentApiError(
                    f"{method} {path}: {response.status_code} {_error_text(response)}",
                    status_code=response.status_code,
                )
            return response
        raise TransientApiError(f"{method} {path}: gave up after {MAX_ATTEMPTS} attempts")

    def _backoff(self, attempt: int, message: str, exc: Exception | None) -> None:
        if attempt + 1 >= MAX_ATTEMPTS:
            raise TransientApiError(f"{message} (after {MAX_ATTEMPTS} attempts)") from exc
        self.stats.retries += 1
        self._sleep(min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**attempt))

    # -- reads ----------------------------------------------------------------------------------

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
            if has_more is None:
                has_more = offset < int(meta.get("total") or 0)
            if not results or not has_more:
                return

    def list_all(self, path: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return list(self.iter_pages(path, params))

    # -- writes ---------------------------------------------------------------------------------

    def post_write(self, path: str, body: dict[str, Any]) -> str:
        """POST a write and return its job id (accepts both documented envelopes)."""
        self.stats.writes += 1
        data = _json(self._send("POST", path, json=body))
        job_id = (data.get("meta") or {}).get("job_id") or data.get("job_id")
        if not isinstance(job_id, str) or not job_id:
            raise TransientApiError(f"POST {path}: the answer has no job_id", maybe_applied=True)
        return job_id

    def write_status(self, job_id: str) -> dict[str, Any]:
        """``GET /v1/admin/write-status/{job_id}``: write_status, errors, created_record_id."""
        self.stats.status_polls += 1
        return self.get(f"/v1/admin/write-status/{job_id}")

    def manual_sync(self, integration_id: str, models: list[str] | None = None) -> bool:
        """Ask Propexo to sync now (rehearsals; Propexo advises against routine use)."""
        body: dict[str, Any] = {"models_to_sync": models} if models else {}
        data = _json(
            self._send("POST", f"/v1/admin/integrations/{integration_id}/manual-sync", json=body)
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


def make_client(settings: Settings, **kwargs: Any) -> PropexoClient:
    """The one place a client is built from settings."""
    return PropexoClient(
        settings.base_url,
        settings.token,
        connect_timeout_s=settings.connect_timeout_s,
        read_timeout_s=settings.read_timeout_s,
        **kwargs,
    )

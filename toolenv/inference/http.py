"""The HTTP side of the endpoint client: one ``httpx`` connection pool shared by every thread,
several replicas balanced by load, retries with exponential backoff and jitter, counters.

- **Balancing.** Each request goes to the replica with the fewest requests in flight (ties: the
  one that has been sent the fewest, then the first given), so a slow replica gets less work.
- **Retries.** HTTP 429, 408 and 5xx, timeouts and broken connections are retried, at most
  ``retries`` times per request, after ``uniform(d/2, d)`` seconds with ``d = backoff * 2**n``
  capped at ``max_backoff`` (a server's ``Retry-After``, when given, is waited instead, up to
  ``max_backoff``). A retry may go to another replica.
- **Permanent failures.** Another 4xx, a refused connection, a reply that is not JSON and a
  request whose retries are exhausted raise :class:`EndpointError`: one line naming the replica
  and the status.
- **Counters** (:meth:`EndpointPool.stats`): requests answered, retries, failures, the most
  requests in flight at once, in total and per replica.

The API key goes only into the ``Authorization`` header: never into a message, a counter or a
``repr``. URLs are shown without any ``user:password@`` part.
"""

from __future__ import annotations

import errno
import json
import random
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from toolenv.inference.types import ModelError, one_line

DEFAULT_RETRIES = 4
#: statuses worth another try: rate limited, or the server's own trouble (5xx)
RETRY_STATUSES = frozenset({408, 429})


class EndpointError(ModelError):
    """A request that failed for good (one line, naming the replica; ``status`` is the HTTP
    status or a word: ``timeout``, ``refused``, ``unreachable``, ``bad reply``)."""

    def __init__(self, message: str, url: str = "", status: int | str = "") -> None:
        super().__init__(message)
        self.url, self.status = url, status


def shown_url(url: str) -> str:
    """``url`` without credentials (``http://user:secret@host`` → ``http://host``)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def parse_urls(values: str | Sequence[str]) -> list[str]:
    """Base URLs from one string or several, each possibly a comma list; checked to be http(s)
    URLs (a one-line :class:`ModelError` otherwise), trailing ``/`` removed, duplicates dropped."""
    items = [values] if isinstance(values, str) else list(values)
    urls: list[str] = []
    for item in items:
        for url in str(item).split(","):
            url = url.strip().rstrip("/")
            if not url:
                continue
            if not url.startswith(("http://", "https://")):
                raise ModelError(f"endpoint {shown_url(url)!r} is not an http(s) URL (e.g. http://localhost:8000/v1)")
            if url not in urls:
                urls.append(url)
    if not urls:
        raise ModelError("no endpoint URL given (e.g. --endpoint http://localhost:8000/v1)")
    return urls


@dataclass
class _Failure:
    """One failed attempt: the message around the attempt count, and whether to try again."""

    head: str
    tail: str
    status: int | str
    retryable: bool = True
    retry_after: float | None = None


@dataclass
class Replica:
    url: str
    in_flight: int = 0
    sent: int = 0
    requests: int = 0
    retries: int = 0
    failures: int = 0

    def counters(self) -> dict[str, Any]:
        return {
            "url": shown_url(self.url),
            "requests": self.requests,
            "retries": self.retries,
            "failures": self.failures,
        }


def _refused(exc: BaseException) -> bool:
    """Whether a connection error is a refusal (nothing listens there) rather than a hiccup."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, ConnectionRefusedError) or getattr(seen, "errno", None) == errno.ECONNREFUSED:
            return True
        seen = seen.__cause__ or seen.__context__
    return "connection refused" in str(exc).lower() or "errno 111" in str(exc).lower()


class EndpointPool:
    """POSTs JSON to the least-loaded replica, retrying what is worth retrying; thread-safe."""

    def __init__(
        self,
        urls: str | Sequence[str],
        api_key: str | None = None,
        timeout: float = 120.0,
        retries: int = DEFAULT_RETRIES,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not timeout > 0:
            raise ModelError(f"the endpoint timeout must be > 0 seconds (got {timeout!r})")
        if not isinstance(retries, int) or retries < 0:
            raise ModelError(f"retries must be a whole number >= 0 (got {retries!r})")
        import httpx

        self.replicas = [Replica(url) for url in parse_urls(urls)]
        self.timeout, self.retries, self.backoff, self.max_backoff = timeout, retries, backoff, max_backoff
        self._sleep = sleep
        self._random = random.Random()
        self._lock = threading.Lock()
        self._in_flight = 0
        self.max_in_flight = 0
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {api_key}"} if api_key else {})}
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=256),
            headers=headers,  # proxies and certificates from the environment apply, as for urllib before
        )

    def __repr__(self) -> str:
        return f"EndpointPool({[shown_url(r.url) for r in self.replicas]!r})"

    def close(self) -> None:
        self._client.close()

    # -- balancing ---------------------------------------------------------------------------

    def _acquire(self) -> Replica:
        with self._lock:
            replica = min(self.replicas, key=lambda r: (r.in_flight, r.sent))
            replica.in_flight += 1
            replica.sent += 1
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            return replica

    def _release(self, replica: Replica) -> None:
        with self._lock:
            replica.in_flight -= 1
            self._in_flight -= 1

    def _count(self, replica: Replica, field: str) -> None:
        with self._lock:
            setattr(replica, field, getattr(replica, field) + 1)

    # -- one request -------------------------------------------------------------------------

    def post_json(self, path: str, payload: dict[str, Any]) -> tuple[Any, str]:
        """The JSON reply of ``POST <replica><path>`` and the replica that gave it (shown without
        credentials); :class:`EndpointError` when the request fails for good."""
        body = json.dumps(payload).encode()
        for attempt in range(self.retries + 1):
            replica = self._acquire()
            try:
                answer, failure = self._send(replica, path, body)
            finally:
                self._release(replica)
            if failure is None:
                self._count(replica, "requests")
                return answer, shown_url(replica.url)
            if not failure.retryable or attempt == self.retries:
                self._count(replica, "failures")
                tries = f" ({attempt + 1} attempts)" if attempt else ""
                raise EndpointError(failure.head + tries + failure.tail, shown_url(replica.url), failure.status)
            self._count(replica, "retries")
            self._sleep(self._delay(attempt, failure.retry_after))
        raise AssertionError("unreachable")  # the last attempt returns or raises

    def _send(self, replica: Replica, path: str, body: bytes) -> tuple[Any, "_Failure | None"]:
        import httpx

        url = shown_url(replica.url)
        try:
            response = self._client.post(replica.url + path, content=body)
        except httpx.TimeoutException:
            return None, _Failure(
                f"endpoint {url} did not answer within {self.timeout:g} s", " (raise --timeout)", "timeout"
            )
        except httpx.TransportError as exc:
            if isinstance(exc, httpx.ConnectError) and _refused(exc):
                head = f"cannot reach endpoint {url} (connection refused: is the server running?)"
                return None, _Failure(head, "", "refused", retryable=False)
            reason = one_line(str(exc) or type(exc).__name__, 200)
            return None, _Failure(f"cannot reach endpoint {url} ({reason})", "", "unreachable")
        status = response.status_code
        if status == 200:
            try:
                return response.json(), None
            except ValueError:
                return None, _Failure(f"endpoint {url} did not answer with JSON", "", "bad reply", retryable=False)
        return None, _Failure(
            f"endpoint {url} answered HTTP {status}",
            f": {one_line(response.text[:200], 200)}",
            status,
            retryable=status in RETRY_STATUSES or status >= 500,
            retry_after=_retry_after(response.headers.get("Retry-After")),
        )

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_backoff)
        ceiling = min(self.max_backoff, self.backoff * 2**attempt)
        return self._random.uniform(ceiling / 2, ceiling)

    def stats(self) -> dict[str, Any]:
        """Counters since the pool was made: totals, the peak of requests in flight, per replica."""
        with self._lock:
            rows = [replica.counters() for replica in self.replicas]
            return {
                "requests": sum(r["requests"] for r in rows),
                "retries": sum(r["retries"] for r in rows),
                "failures": sum(r["failures"] for r in rows),
                "max_in_flight": self.max_in_flight,
                "endpoints": rows,
            }


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header given in seconds (an HTTP date is ignored)."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds >= 0 else None

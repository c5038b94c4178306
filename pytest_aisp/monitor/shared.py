"""Per-client detector state in Redis, shared by every replica of a service.

A model thief or a flooder who spreads requests over the replicas behind a load balancer stays
under every per-process limit. With a :class:`RedisState`, the rate, errors and extraction
detectors keep their per-client history in one Redis server instead: each update is one Lua
script, run atomically, so the replicas together give the verdicts one monitor would give on
all of the traffic (the tests check this equivalence against the in-process state).

Bounds: every key expires (``ttl_s``, shorter where a shorter one loses nothing: a token bucket
that has refilled, a window that has passed), and no key grows without limit (distances are
trimmed to ``max_distances``, class points stop at ``max_points_per_class``). Client ids are
hashed into key names. Set ``maxmemory`` with an eviction policy on the server for a hard cap.

Failures never reach the request: a failing or unreachable Redis raises
:class:`SharedStateError`, which the monitor counts as a detector failure (the event went
unchecked, ``AISP-MON-UNCHECKED``); for ``retry_after_s`` afterwards calls fail at once rather
than wait on the network again.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import struct
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from pytest_aisp.backends import require
from pytest_aisp.findings import AispError


class SharedStateError(AispError):
    """The shared state could not be read or written; the detector's event went unchecked."""


# Token bucket: the same arithmetic, in the same order, as RateDetector's in-process bucket; numbers
# are stored with 17 significant digits, so replicas and one process agree to the last bit.
_BUCKET = """
local ts, rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'last', 'over')
local tokens = tonumber(state[1]) or burst
local last = tonumber(state[2])
local over = tonumber(state[3]) or 0
if last then tokens = math.min(burst, tokens + math.max(0, ts - last) * rate) end
local flagged = 0
if tokens >= 1.0 - 1e-9 then tokens = tokens - 1.0 else over = over + 1; flagged = 1 end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'last', ARGV[1], 'over', over)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {flagged, over}
"""

# A time window of event times (at most ARGV[3] kept); returns how many lie within it.
_WINDOW = """
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[3]) + 1))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return redis.call('ZCARD', KEYS[1])
"""

# One PRADA step (optimistic: the caller computed the distance against the class points it holds,
# ARGV[1] bytes of them; when the stored points differ, nothing changes and the missing points are
# returned). Points and distances are packed little-endian float64s, appended to strings (the
# distances keep their last max_distances). KEYS: class points, class stats, client distances,
# client state, endpoint totals. ARGV: expected point bytes, distance ('' for a class's first
# point), join, point, n s q t after the join, max_distances, check_every, min_distances, ttl_ms,
# far ('' without a reference, else 0/1).
_PRADA = """
local have = redis.call('STRLEN', KEYS[1])
local expected = tonumber(ARGV[1])
if have ~= expected then
  local from = expected
  if have < expected then from = 0 end
  local points = ''
  if have > from then points = redis.call('GETRANGE', KEYS[1], from, have - 1) end
  local stats = redis.call('HMGET', KEYS[2], 'n', 's', 'q', 't')
  return {0, from, points, stats[1], stats[2], stats[3], stats[4]}
end
local due = ''
if ARGV[2] == '' then
  redis.call('APPEND', KEYS[1], ARGV[4])
else
  local kept = 8 * tonumber(ARGV[9])
  local size = redis.call('APPEND', KEYS[3], ARGV[2])
  if size > kept then
    redis.call('SET', KEYS[3], redis.call('GETRANGE', KEYS[3], size - kept, size - 1))
    size = kept
  end
  local since = redis.call('HINCRBY', KEYS[4], 'since', 1)
  if ARGV[3] == '1' then
    redis.call('APPEND', KEYS[1], ARGV[4])
    redis.call('HSET', KEYS[2], 'n', ARGV[5], 's', ARGV[6], 'q', ARGV[7], 't', ARGV[8])
  end
  if since >= tonumber(ARGV[10]) and size >= 8 * tonumber(ARGV[11]) then
    redis.call('HSET', KEYS[4], 'since', 0)
    due = redis.call('GET', KEYS[3])
  end
end
local counts = {0, 0, 0, 0}
if ARGV[13] ~= '' then
  counts[1] = redis.call('HINCRBY', KEYS[4], 'queries', 1)
  counts[2] = redis.call('HINCRBY', KEYS[4], 'off', tonumber(ARGV[13]))
  counts[3] = redis.call('HINCRBY', KEYS[5], 'queries', 1)
  counts[4] = redis.call('HINCRBY', KEYS[5], 'off', tonumber(ARGV[13]))
  redis.call('PEXPIRE', KEYS[5], ARGV[12])
end
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[12]) end
return {1, due, counts[1], counts[2], counts[3], counts[4]}
"""


@dataclass(frozen=True)
class PradaStep:
    """The answer to one PRADA step.

    ``stale``: the stored class points differ from the caller's; nothing was changed, and
    ``points`` holds the stored points from byte ``from_byte`` (0: the caller's copy is ahead
    of the store, e.g. after a key expired, and must be replaced), ``stats`` the class's
    ``(n, s, q, t)`` (None before its first distance). Otherwise ``distances`` holds the
    client's distance set when a Shapiro-Wilk test is due, and ``counts`` the off-manifold
    counts (client queries, client off-manifold, endpoint queries, endpoint off-manifold).
    """

    stale: bool
    from_byte: int = 0
    points: bytes = b""
    stats: tuple[int, float, float, float] | None = None
    distances: np.ndarray | None = None
    counts: tuple[int, int, int, int] = (0, 0, 0, 0)


class RedisState:
    """Shared per-client state for :class:`RateDetector`, :class:`ErrorDetector` and
    :class:`ExtractionDetector` (``shared=`` parameter), kept in Redis.

    - ``url``: ``redis://[:password@]host:port/db`` (``rediss://`` for TLS); read credentials
      from the environment or a secret store, never from a committed file;
    - ``prefix``: the first part of every key (one per service sharing a server);
    - ``ttl_s``: how long a client's state outlives its last request;
    - ``timeout_s``: socket timeout of each call (the detectors run on the request's event loop,
      so a hung server may hold it this long, once per ``retry_after_s``);
    - ``retry_after_s``: after a failure, calls fail at once for this long (the events go
      unchecked and are counted) instead of each waiting on the network.
    """

    def __init__(self, url: str, *, prefix: str = "aisp", ttl_s: float = 86_400.0, timeout_s: float = 0.25,
                 retry_after_s: float = 5.0) -> None:
        if ttl_s <= 0 or timeout_s <= 0 or retry_after_s < 0:
            raise ValueError("ttl_s and timeout_s must be positive, retry_after_s not negative")
        redis = require("redis", "redis")
        self.where = redact_url(url)
        self.prefix = prefix
        self.ttl_s = float(ttl_s)
        self.retry_after_s = float(retry_after_s)
        try:
            self.client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        except ValueError as exc:
            raise AispError(f"shared state URL {self.where} is invalid ({exc}); expected redis://host:port/db") \
                from None
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._bucket = self.client.register_script(_BUCKET)
        self._window = self.client.register_script(_WINDOW)
        self._prada = self.client.register_script(_PRADA)
        self._down_until = 0.0

    def check(self) -> None:
        """Raise ``AispError`` naming the server unless it answers (call once at start-up)."""
        try:
            self.client.ping()
        except self._errors as exc:
            raise AispError(f"the shared monitor state at {self.where} does not answer ({exc}); start Redis or "
                            "fix the URL ([tool.aisp.monitor.shared] url / url_env, or --shared-state)") from None

    def close(self) -> None:
        self.client.close()

    def key(self, client: str, part: str) -> str:
        """The key of ``part`` of ``client``'s state: the client id hashed (bounded length, and one
        Redis Cluster slot per client through the braces)."""
        return f"{self.prefix}:{{{_digest(client)}}}:{part}"

    def token_bucket(self, client: str, ts: float, rate_per_s: float, burst: float) -> tuple[bool, int]:
        """Take one token from ``client``'s bucket at ``ts``: (over budget, requests over budget so far)."""
        ttl = min(self.ttl_s, max(60.0, 2.0 * burst / rate_per_s))
        flagged, over = self._run(self._bucket, [self.key(client, "rate")],
                                  [repr(float(ts)), repr(float(rate_per_s)), repr(float(burst)), _ms(ttl)])
        return bool(flagged), int(over)

    def window_count(self, name: str, client: str, ts: float, span_s: float, limit: int) -> int:
        """Add ``ts`` to ``client``'s window ``name`` (the last ``span_s`` seconds, at most ``limit``
        times kept); the number of times in it."""
        member = f"{ts!r}:{os.urandom(6).hex()}"  # several events may share a time
        return int(self._run(self._window, [self.key(client, name)],
                             [repr(float(ts)), repr(float(ts) - span_s), str(limit), _ms(min(self.ttl_s, span_s) + 1),
                              member]))

    def prada_step(self, client: str, endpoint: str, label: int, *, expected_bytes: int, point: bytes,
                   distance: float | None, stats: tuple[int, float, float, float] | None, far: bool | None,
                   max_distances: int, check_every: int, min_distances: int) -> PradaStep:
        """One PRADA update for ``client`` (see :class:`PradaStep`)."""
        keys = [self.key(client, f"prada:points:{label}"), self.key(client, f"prada:class:{label}"),
                self.key(client, "prada:distances"), self.key(client, "prada"),
                f"{self.prefix}:endpoint:{_digest(endpoint)}"]
        n, s, q, t = stats or (0, 0.0, 0.0, 0.0)
        packed = b"" if distance is None else struct.pack("<d", distance)
        args = [str(expected_bytes), packed, "1" if stats else "0", point, str(n), repr(s), repr(q), repr(t),
                str(max_distances), str(check_every), str(min_distances), _ms(self.ttl_s),
                "" if far is None else str(int(far))]
        reply = self._run(self._prada, keys, args)
        if int(reply[0]) == 0:
            n_, s_, q_, t_ = reply[3:7]
            known = None if n_ is None else (int(n_), float(s_), float(q_), float(t_))
            return PradaStep(stale=True, from_byte=int(reply[1]), points=bytes(reply[2] or b""), stats=known)
        due = np.frombuffer(reply[1], dtype="<f8").copy() if reply[1] else None
        return PradaStep(stale=False, distances=due, counts=(int(reply[2]), int(reply[3]), int(reply[4]),
                                                             int(reply[5])))

    def set_value(self, client: str, part: str, field: str, value: float) -> None:
        """Store one number of ``client``'s state (e.g. PRADA's last ``W``)."""
        def store() -> None:
            key = self.key(client, part)
            with self.client.pipeline(transaction=False) as pipe:
                pipe.hset(key, field, repr(float(value)))
                pipe.pexpire(key, int(self.ttl_s * 1000))
                pipe.execute()

        self._call(store)

    def get_value(self, client: str, part: str, field: str) -> float | None:
        """One number of ``client``'s state, or None when it has none."""
        value = self._call(lambda: self.client.hget(self.key(client, part), field))
        return None if value is None else float(value)

    def _run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        return self._call(lambda: script(keys=keys, args=args))

    def _call(self, operation: Any) -> Any:
        now = time.monotonic()
        if now < self._down_until:
            raise SharedStateError(f"the shared monitor state at {self.where} failed less than "
                                   f"{self.retry_after_s:g}s ago; the event went unchecked")
        try:
            return operation()
        except self._errors as exc:
            self._down_until = now + self.retry_after_s
            raise SharedStateError(f"the shared monitor state at {self.where} failed ({type(exc).__name__}: "
                                   f"{str(exc)[:120]}); the event went unchecked") from None


@functools.lru_cache(maxsize=65_536)
def _digest(name: str) -> str:
    return hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


def _ms(seconds: float) -> str:
    return str(max(1, math.ceil(seconds * 1000)))


def redact_url(url: str) -> str:
    """``url`` without its password (for messages and logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username + ':' if parts.username else ':'}***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

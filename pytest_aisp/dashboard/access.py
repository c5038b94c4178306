"""Who may change things on the dashboard, and who they are.

Two ways in, either enough for triage and configuration:

- the dashboard token (``AISP_DASHBOARD_TOKEN``), typed into the form or sent as ``Authorization: Bearer``;
- an identity header (``X-Forwarded-User`` by default) set by a reverse proxy that authenticated the user.
  It is believed only on connections that come from a configured proxy address (the TCP peer, never a
  forwarded-for header); from anywhere else it is ignored. Forms posted under a proxy identity carry a
  per-identity CSRF value, so another site cannot post them with the user's proxy session.

Triage records who decided: the proxy's user name, or ``token`` for a token holder.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pytest_aisp.findings import AispError

DEFAULT_USER_HEADER = "X-Forwarded-User"
TOKEN_IDENTITY = "token"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_proxies(values: Iterable[str] | str) -> tuple[Network, ...]:
    """Addresses or networks (``10.0.0.5``, ``10.0.0.0/24``, ``::1``), comma-separated or as a list."""
    items = values.split(",") if isinstance(values, str) else list(values)
    networks = []
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise AispError(f"trusted proxy {item!r} is not an IP address or network such as 10.0.0.0/24") from None
    return tuple(networks)


@dataclass(frozen=True)
class Access:
    """The token, the trusted proxies and their identity header; a secret for CSRF values."""

    token: str | None = None
    proxies: tuple[Network, ...] = ()
    user_header: str = DEFAULT_USER_HEADER
    secret: bytes = field(default_factory=lambda: os.urandom(32), repr=False)

    @property
    def writable(self) -> bool:
        """Whether anyone can write at all (a token is set, or proxies are trusted)."""
        return self.token is not None or bool(self.proxies)

    def proxy_user(self, peer: str | None, headers: Mapping[str, str]) -> str | None:
        """The user a trusted proxy vouches for; None when the peer is not a trusted proxy or sent no name."""
        if not self.proxies or not peer:
            return None
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return None
        if not any(address in network for network in self.proxies):
            return None
        name = (headers.get(self.user_header.lower()) or headers.get(self.user_header) or "").strip()
        return name[:200] or None

    def csrf_for(self, user: str) -> str:
        return hmac.new(self.secret, user.encode("utf-8"), hashlib.sha256).hexdigest()

    def authorize(self, peer: str | None, headers: Mapping[str, str], form: Mapping[str, str]) -> str:
        """Who is making this change; ``PermissionError`` saying why not."""
        user = self.proxy_user(peer, headers)
        if user is not None:
            if not hmac.compare_digest(str(form.get("csrf", "")), self.csrf_for(user)):
                raise PermissionError("the form is stale or came from another site: reload the page and try again")
            return user
        if self.token is None:
            raise PermissionError("the dashboard is read-only: start it with AISP_DASHBOARD_TOKEN set, or behind a "
                                  "trusted proxy (--trusted-proxy)")
        given = str(form.get("token") or headers.get("authorization", "").removeprefix("Bearer ").strip())
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            raise PermissionError("wrong or missing token")
        return TOKEN_IDENTITY

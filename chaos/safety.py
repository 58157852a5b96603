"""Safety rails: traffic stays on loopback unless a host is allowed by name,
and nothing ever talks to live Stripe.

Every URL the tool sends to, or tells a service to send to, passes here
first. Refusals are UsageErrors: nothing has been sent yet.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from chaos.errors import UsageError

LIVE_STRIPE_HOSTS = frozenset({"api.stripe.com", "files.stripe.com", "connect.stripe.com",
                               "meter-events.stripe.com"})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(url: str, *, what: str, allow_hosts: Iterable[str] = ()) -> str:
    """``url`` if it may receive traffic; a UsageError naming ``what`` otherwise."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise UsageError(f"{what} {url!r} is not an http(s) URL")
    if host in LIVE_STRIPE_HOSTS or host.endswith(".stripe.com"):
        raise UsageError(f"{what} points at live Stripe ({host}): the tool never sends "
                         "traffic there; use the fake Stripe API it starts")
    if not is_loopback(host) and host not in {h.lower() for h in allow_hosts}:
        raise UsageError(f"{what} {host} is not on loopback: list it in allow_hosts to "
                         "send traffic there")
    return url


def check_stripe_key(key: str, *, what: str = "the Stripe API key") -> str:
    if key.startswith(("sk_live_", "rk_live_", "pk_live_")):
        raise UsageError(f"{what} is a live key: the tool only ever uses test keys (sk_test_...)")
    return key


def check_database_host(url: str, *, what: str, allow_hosts: Iterable[str] = ()) -> str:
    """``url`` (a PostgreSQL URL) if its host is on loopback or allowed by name; a
    UsageError naming ``what`` otherwise. A URL without a host (a Unix socket) is local."""
    host = (urlsplit(url).hostname or "localhost").lower()
    if not is_loopback(host) and host not in {h.lower() for h in allow_hosts}:
        raise UsageError(f"{what} host {host} is not on loopback: the reference run only "
                         "uses a server on this machine (127.0.0.1); to test your own "
                         "service's database elsewhere, use --config and list the host in "
                         "target.allow_hosts")
    return url

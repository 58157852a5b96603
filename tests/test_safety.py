"""Safety rails: loopback only unless allowed, never live Stripe."""

from __future__ import annotations

import re

import pytest

from chaos.errors import UsageError
from chaos.safety import check_stripe_key, check_url


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/x", "http://localhost:1", "http://[::1]:80/"])
def test_loopback_is_allowed(url):
    assert check_url(url, what="target") == url


@pytest.mark.parametrize("url, words", [
    ("https://api.stripe.com/v1", "live Stripe"),
    ("https://files.stripe.com", "live Stripe"),
    ("http://10.0.0.5:8000", "not on loopback: list it in allow_hosts"),
    ("ftp://127.0.0.1/", "not an http(s) URL"),
])
def test_refused_urls_name_the_fix(url, words):
    with pytest.raises(UsageError, match=re.escape(words)):
        check_url(url, what="target")


def test_an_allowed_host_passes_but_live_stripe_never_does():
    assert check_url("http://staging.internal:80", what="t", allow_hosts=["staging.internal"])
    with pytest.raises(UsageError):
        check_url("https://api.stripe.com", what="t", allow_hosts=["api.stripe.com"])


@pytest.mark.parametrize("key", ["sk_live_abc", "rk_live_abc"])
def test_live_keys_are_refused(key):
    with pytest.raises(UsageError, match="live key"):
        check_stripe_key(key)

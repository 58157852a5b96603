"""Redaction: secrets never reach a log, a report or the terminal.

One redactor serves every output; these tests feed it the shapes secrets
take in practice and check that what is not secret reads as before.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from chaos.log import LOGGER_NAME, REDACTED, Redactor, configure, get_logger, redactor

SIGNATURE = "t=1700000000,v1=" + "a" * 64 + ",v0=" + "b" * 64


@pytest.mark.parametrize("text, secret", [
    ("secret is whsec_abcDEF0123456789", "whsec_abcDEF0123456789"),
    ("key sk_test_51Habc0123456789xyz in use", "sk_test_51Habc0123456789xyz"),
    ("live key rk_live_0123456789abcdef refused", "rk_live_0123456789abcdef"),
    (f"Stripe-Signature: {SIGNATURE}", "a" * 64),
    (f"headers={{'stripe-signature': '{SIGNATURE}'}}", "b" * 64),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9"),
    ("authorization=Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    ("{'Authorization': 'Bearer abcdefgh12345678'}", "abcdefgh12345678"),
    ("cannot connect to postgresql://app:hunter2pw@db:5432/x", "hunter2pw"),
])
def test_secret_shaped_text_is_redacted(text: str, secret: str):
    out = Redactor().text(text)
    assert secret not in out
    assert REDACTED in out


@pytest.mark.parametrize("text", [
    "payment pi_test_3ac2d700000258 (buyer 1) bought 1 ticket but has 2 in 2 order(s)",
    "POST http://127.0.0.1:8000/functions/v1/stripe-webhook",
    "session cs_test_abc123 and event evt_test_0001",
    "basic invariants hold; bearer of bad news",
    "use test keys (sk_test_...)",
])
def test_ordinary_text_is_left_alone(text: str):
    assert Redactor().text(text) == text


def test_registered_secrets_and_secret_keys_are_redacted_at_any_depth():
    r = Redactor(["my-registered-token-123"])
    data = {"target": {"webhook_secret": "anything", "Stripe-Signature": "x",
                       "base_url": "http://127.0.0.1:1"},
            "ops": [("said my-registered-token-123", 5)], "api_key": None}
    assert r.value(data) == {
        "target": {"webhook_secret": REDACTED, "Stripe-Signature": REDACTED,
                   "base_url": "http://127.0.0.1:1"},
        "ops": [(f"said {REDACTED}", 5)], "api_key": None,
    }


def test_structlog_json_lines_and_the_console_both_pass_the_redactor(tmp_path: Path, capsys):
    secret = "whsec_" + "c" * 32
    redactor.add("registered-secret-xyz")
    path = tmp_path / "log.jsonl"
    configure(json_path=path)
    try:
        log = get_logger(command="test")
        log.debug("request", body=f"signed with {secret}", webhook_secret=secret)
        log.warning("finding", note="registered-secret-xyz leaked?")
        logging.getLogger(LOGGER_NAME + ".other").info("plain stdlib %s", secret)
    finally:
        configure()  # back to the console only; closes the file
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["event"] for e in lines] == ["request", "finding", f"plain stdlib {REDACTED}"]
    assert lines[0]["level"] == "debug" and lines[0]["command"] == "test"
    assert lines[0]["webhook_secret"] == REDACTED and secret not in path.read_text()
    err = capsys.readouterr().err
    assert "finding" in err and "request" not in err   # console: warnings only by default
    assert "registered-secret-xyz" not in err and "registered-secret-xyz" not in path.read_text()

"""The fake Stripe in a user's own tests: start it, point stripe-python at it, play
the buyer and Stripe, read what happened, deliver its events.

The pytest plugin (:mod:`chaos.pytest_plugin`) hands a :class:`FakeStripeSession`
to each test as the ``fake_stripe`` fixture; outside pytest the same object
comes from :func:`fake_stripe_running`::

    with fake_stripe_running(workdir) as fake:
        client = fake.client()                       # stripe.StripeClient at the fake
        session = client.v1.checkout.sessions.create(params={...})
        paid = fake.pay(session.id)                  # the buyer pays on Stripe's page
        fake.deliver(paid.event("checkout.session.completed"), "http://127.0.0.1:8000/webhook")

The fake Stripe runs as its own process, started exactly as a chaos run starts
it (:func:`chaos.services.running`), with the same state, idempotency keys,
faults and event shapes. No chaos run is needed: this module sends nothing but
what a test asks for. One server can serve many tests: :meth:`FakeStripeSession.scoped`
gives a view whose :meth:`~FakeStripeSession.events` and
:meth:`~FakeStripeSession.calls` start where the view began and whose faults
are cleared when it ends.

The chaos search and single scenarios, as tests: :func:`search` runs a whole
search (``chaos.lifecycle.run``) against a config's target and raises an
AssertionError carrying the report's summary when it fails;
:func:`running_target` yields a :class:`ChaosTarget` whose
:meth:`~ChaosTarget.execute` runs one scenario (drawn by ``@given(strategies.
scenarios(...))`` in the user's own test) and returns what was observed and
which invariants broke. Both can use a fake Stripe that is already running
(the plugin's ``fake_stripe_server``, which the service under test was
pointed at) instead of starting one on the config's ``stripe.port``.

Secrets: the ``sk_test_`` key and the ``whsec_`` webhook secret are made here,
at random, per server; they never appear in a repr, a log or a command line
(the fake Stripe takes no secret at all: it accepts any test key).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import stripe

from chaos.errors import InfrastructureError, UsageError
from chaos.safety import check_url
from chaos.services import Service, running
from chaos.signing import VARIANTS, sign

if TYPE_CHECKING:   # the run's machinery loads when a search or a scenario runs
    from chaos.config import Config
    from chaos.example import ExampleResult
    from chaos.report import Report
    from chaos.run import Runner
    from strategies import Scenario

#: A Stripe object or event as JSON data.
StripeObject = dict[str, Any]

#: Seconds a control or delivery request may take before the helper gives up.
REQUEST_TIMEOUT = 30.0


@dataclass(frozen=True)
class Transition:
    """What one move of a payment made: the events the fake Stripe emitted (in
    order) and the objects it changed, by kind (``checkout_session``,
    ``payment_intent``, ``charge``, ``refund``, ``dispute``)."""

    events: tuple[StripeObject, ...]
    objects: Mapping[str, StripeObject | None]

    def event(self, type_: str) -> StripeObject:
        """The one event of this type (``checkout.session.completed``); KeyError names
        the types there are."""
        for event in self.events:
            if event["type"] == type_:
                return event
        raise KeyError(f"no {type_} event; this move emitted "
                       f"{', '.join(e['type'] for e in self.events) or 'none'}")

    def __getitem__(self, kind: str) -> StripeObject | None:
        return self.objects.get(kind)


class ControlError(Exception):
    """The fake Stripe refused a control call (a session that is not open, a charge
    already refunded, ...); the message is Stripe's, ``status`` its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class FakeStripeSession:
    """A running fake Stripe, as a test uses it.

    ``api_base``: where stripe-python sends its calls (``stripe.api_base``, or
    ``StripeClient(base_addresses={"api": api_base})``); ``api_key``: a
    ``sk_test_`` key it accepts; ``webhook_secret``: the ``whsec_`` secret
    :meth:`deliver` signs with (give the service under test the same one).
    Its repr names the server only (pytest and Hypothesis print it on failure).
    """

    def __init__(self, *, api_base: str, api_key: str, webhook_secret: str, http: httpx.Client,
                 first_event: str | None = None, calls_since: int = 0) -> None:
        self.api_base = api_base
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self._http = http
        self._first_event = first_event
        self._calls_since = calls_since

    def __repr__(self) -> str:
        return f"FakeStripeSession(api_base={self.api_base!r})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Hypothesis' and IPython's pretty printer: the repr, never the secrets."""
        printer.text(repr(self))

    # -- stripe-python -------------------------------------------------------------------------

    def client(self, **options: Any) -> stripe.StripeClient:
        """A ``stripe.StripeClient`` at the fake with :attr:`api_key`, without network
        retries (a test sees every call); ``options`` go to ``StripeClient``."""
        options.setdefault("max_network_retries", 0)
        return stripe.StripeClient(self.api_key, base_addresses={"api": self.api_base},
                                   **options)

    @contextlib.contextmanager
    def configured(self) -> Iterator[None]:
        """Point the ``stripe`` module's globals (``api_base``, ``api_key``) at the fake
        for the block, and put back what they were: for code that uses
        ``stripe.checkout.Session.create(...)`` directly."""
        saved = stripe.api_base, stripe.api_key
        stripe.api_base, stripe.api_key = self.api_base, self.api_key
        try:
            yield
        finally:
            stripe.api_base, stripe.api_key = saved

    # -- playing the buyer and Stripe ----------------------------------------------------------

    def create_session(self, amount_total: int = 5000, **fields: Any) -> StripeObject:
        """A Checkout Session made on the fake's side, as if a service had created it
        (``currency``, ``metadata``, ``customer_email``, ``client_reference_id``,
        ``line_items``: see :mod:`chaos.fake_stripe.control`). Not a recorded call."""
        return self._post("/_chaos/checkout/sessions", {"amount_total": amount_total, **fields})

    def pay(self, payment: str, *, card: str | None = None, email: str | None = None,
            delayed: bool = False) -> Transition:
        """The buyer pays: a Checkout Session (``cs_...``) is completed and paid by
        card (``delayed``: completed unpaid, a bank debit still pending; settle it
        with :meth:`settle`); a PaymentIntent (``pi_...``) is confirmed with ``card``
        (default its own method, else ``pm_card_visa``)."""
        if payment.startswith("pi_"):
            return self._confirm(payment, card)
        self._session_only(payment, "pay")
        body: dict[str, Any] = {"outcome": "async_pending" if delayed else "paid"}
        if email is not None:
            body["customer_details"] = {"email": email}
        return self._moved(self._post(f"/_chaos/checkout/sessions/{payment}/pay", body))

    def settle(self, session_id: str, *, succeeded: bool = True) -> Transition:
        """A delayed payment (:meth:`pay` with ``delayed=True``) succeeds or fails."""
        self._session_only(session_id, "settle")
        outcome = "succeeded" if succeeded else "failed"
        return self._moved(self._post(f"/_chaos/checkout/sessions/{session_id}/settle",
                                      {"outcome": outcome}))

    def fail(self, payment: str) -> Transition:
        """The payment fails: a Checkout Session is completed with a bank debit that
        then fails (``checkout.session.async_payment_failed``: a card on Stripe's page
        is retried there, never failed to the service); a PaymentIntent is confirmed
        with a declined card (``payment_intent.payment_failed``)."""
        if payment.startswith("pi_"):
            return self._confirm(payment, "pm_card_chargeDeclined")
        self._session_only(payment, "fail")
        return self._moved(self._post(f"/_chaos/checkout/sessions/{payment}/pay",
                                      {"outcome": "async_failed"}))

    def expire(self, session_id: str) -> Transition:
        """An open Checkout Session expires (``checkout.session.expired``)."""
        self._session_only(session_id, "expire")
        return self._moved(self._post(f"/_chaos/checkout/sessions/{session_id}/expire", {}))

    def refund(self, payment: str, *, amount: int | None = None,
               reason: str | None = None) -> Transition:
        """Refund a paid Checkout Session, PaymentIntent or Charge as if from the dashboard
        (``amount`` in the smallest unit; default all that is left)."""
        body = self._charge_of(payment)
        body.update({k: v for k, v in (("amount", amount), ("reason", reason)) if v is not None})
        return self._moved(self._post("/_chaos/refunds", body))

    def dispute(self, payment: str, *, reason: str = "fraudulent") -> Transition:
        """The buyer's bank disputes the charge of a paid Checkout Session, PaymentIntent
        or Charge (``charge.dispute.created``)."""
        return self._moved(self._post("/_chaos/disputes", {**self._charge_of(payment),
                                                            "reason": reason}))

    # -- what happened -------------------------------------------------------------------------

    def events(self, type_: str | None = None) -> list[StripeObject]:
        """The events the fake emitted since this view began, oldest first; ``type_``
        keeps one type (``"checkout.session.completed"``)."""
        params = {"after": self._first_event} if self._first_event else {}
        found = self._get("/_chaos/objects/event", params)["data"]
        return [e for e in found if type_ is None or e["type"] == type_]

    def objects(self, kind: str, **metadata: str) -> list[StripeObject]:
        """Every object of a kind as the fake holds it now (``checkout.session``,
        ``payment_intent``, ``charge``, ``refund``, ``dispute``, ...), filtered on
        metadata (``objects("checkout.session", order_id="7")``)."""
        params = {f"metadata[{k}]": v for k, v in metadata.items()}
        return list(self._get(f"/_chaos/objects/{kind}", params)["data"])

    def calls(self, path: str | None = None) -> list[StripeObject]:
        """The Stripe API calls the fake received since this view began, in arrival order:
        ``method``, ``path``, ``params``, ``idempotency_key``, ``status``, ``outcome``
        (``ok``, ``error``, ``fault``, ``replayed``), the key masked. ``path`` keeps the
        calls to one path (``"/v1/checkout/sessions"``)."""
        found = self._get("/_chaos/records", {"since": str(self._calls_since)})["data"]
        return [c for c in found if path is None or c["path"] == path]

    # -- faults --------------------------------------------------------------------------------

    def arm(self, path: str, kind: str = "error", *, method: str = "*",
            **rule: Any) -> StripeObject:
        """Make the fake misbehave on calls to ``path`` (a glob: ``/v1/checkout/sessions``,
        ``/v1/**``): ``kind`` is ``error`` (``status``), ``rate-limit``, ``latency``
        (``seconds``), ``hang``, ``reset`` or ``lost-answer``; ``nth=2`` or ``times=3``
        picks calls (default: every call). Returns the armed rule, with its ``id``."""
        return self._post("/_chaos/faults", {"path": path, "kind": kind, "method": method, **rule})

    def faults(self) -> list[StripeObject]:
        """The armed rules, each with how many calls it ``seen`` and ``applied`` to."""
        return list(self._get("/_chaos/faults", {})["data"])

    def clear_faults(self) -> int:
        """Disarm every fault; returns how many there were."""
        return int(self._request("DELETE", "/_chaos/faults")["cleared"])

    # -- webhooks ------------------------------------------------------------------------------

    def deliver(self, event: Mapping[str, Any], url: str, *, variant: str = "valid",
                timeout: float = REQUEST_TIMEOUT, allow_hosts: Sequence[str] = ()) -> httpx.Response:
        """POST ``event`` to the webhook endpoint ``url`` as Stripe does: JSON, signed
        with :attr:`webhook_secret` now (``variant``: ``valid``, or a forgery such as
        ``tampered``, ``stale``, ``wrong-secret``, ``missing``: see :mod:`chaos.signing`).
        Returns the endpoint's answer; only loopback unless the host is in ``allow_hosts``."""
        if variant not in VARIANTS:
            raise UsageError(f"variant {variant!r} is not a signature variant: use one of "
                             f"{', '.join(VARIANTS)}")
        check_url(url, what="the webhook URL", allow_hosts=allow_hosts)
        signed = sign(json.dumps(event), self.webhook_secret, now=int(time.time()),
                      variant=variant)
        with httpx.Client(timeout=timeout, trust_env=False) as http:
            return http.post(url, content=signed.body, headers=signed.headers)

    def deliver_all(self, url: str, events: Sequence[Mapping[str, Any]] | None = None,
                    **options: Any) -> list[httpx.Response]:
        """Deliver ``events`` (default: every event since this view began) in order, once
        each; ``options`` as for :meth:`deliver`."""
        return [self.deliver(e, url, **options)
                for e in (self.events() if events is None else events)]

    # -- views ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def scoped(self) -> Iterator[FakeStripeSession]:
        """A view of the same server whose events and calls start now, with no fault armed;
        its faults are cleared when the block ends (one test's view of a shared server)."""
        events = self._get("/_chaos/objects/event", {})["data"]
        view = FakeStripeSession(
            api_base=self.api_base, api_key=self.api_key, webhook_secret=self.webhook_secret,
            http=self._http, first_event=events[-1]["id"] if events else None,
            calls_since=int(self._get("/_chaos/records", {"since": str(10**12)})["last_seq"]))
        view.clear_faults()
        try:
            yield view
        finally:
            view.clear_faults()

    # -- plumbing ------------------------------------------------------------------------------

    def _confirm(self, intent_id: str, card: str | None) -> Transition:
        body = {"payment_method": card} if card else {}
        made = self._post(f"/_chaos/payment_intents/{intent_id}/confirm", body)
        return self._moved(made)

    def _charge_of(self, payment: str) -> dict[str, Any]:
        if payment.startswith("ch_"):
            return {"charge": payment}
        if payment.startswith("pi_"):
            return {"payment_intent": payment}
        found = [s for s in self.objects("checkout.session") if s["id"] == payment]
        if not found or not found[0].get("payment_intent"):
            raise ControlError(400, f"{payment} is not a paid Checkout Session of this fake "
                               "Stripe: pay it first, or pass its pi_ or ch_ id")
        return {"payment_intent": found[0]["payment_intent"]}

    @staticmethod
    def _session_only(object_id: str, verb: str) -> None:
        if not object_id.startswith("cs_"):
            raise ControlError(400, f"cannot {verb} {object_id!r}: pass a Checkout Session "
                               "id (cs_...)" + (" or a PaymentIntent id (pi_...)"
                                                if verb in ("pay", "fail") else ""))

    @staticmethod
    def _moved(made: StripeObject) -> Transition:
        kinds = ("checkout_session", "payment_intent", "charge", "refund", "dispute")
        return Transition(events=tuple(made.get("events") or ()),
                          objects={k: made[k] for k in kinds if k in made})

    def _post(self, path: str, body: Mapping[str, Any]) -> StripeObject:
        return self._request("POST", path, json=dict(body))

    def _get(self, path: str, params: Mapping[str, str]) -> StripeObject:
        return self._request("GET", path, params=dict(params))

    def _request(self, method: str, path: str, **kwargs: Any) -> StripeObject:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise InfrastructureError(f"the fake Stripe at {self.api_base} did not answer "
                                      f"{method} {path} ({exc}): is it still running?") from None
        data = response.json()
        if response.status_code != 200:
            error = data.get("error", {}) if isinstance(data, dict) else {}
            raise ControlError(response.status_code, str(error.get("message", response.text)))
        if not isinstance(data, dict):
            raise InfrastructureError(f"the fake Stripe answered {method} {path} with "
                                      f"{type(data).__name__}, not an object")
        return data


@contextlib.contextmanager
def fake_stripe_running(workdir: Path, *, port: int = 0,
                        startup_timeout: float = 30.0) -> Iterator[FakeStripeSession]:
    """Start the fake Stripe (``python -m chaos fake-stripe``) on loopback with its log in
    ``workdir``; yield it once it answers; stop it (and its process group) after."""
    with running("fake-stripe", [], workdir=workdir, port=port,
                 startup_timeout=startup_timeout) as service:
        with session_for(service) as fake:
            yield fake


@contextlib.contextmanager
def session_for(service: Service) -> Iterator[FakeStripeSession]:
    """A :class:`FakeStripeSession` over an already running fake Stripe, with a fresh
    ``sk_test_`` key and ``whsec_`` secret."""
    with httpx.Client(base_url=service.url, timeout=REQUEST_TIMEOUT, trust_env=False) as http:
        yield FakeStripeSession(api_base=service.url,
                                api_key=f"sk_test_chaos_{secrets.token_hex(12)}",
                                webhook_secret=f"whsec_chaos_{secrets.token_hex(16)}", http=http)


# -- the chaos search and single scenarios, as tests --------------------------------------------

def search(config: Config | str | Path, *, stripe: FakeStripeSession | str | None = None,
           overrides: Sequence[str] = (), report: Path | None = None,
           **options: Any) -> Report:
    """Run the chaos search against ``config``'s target (a :class:`~chaos.config.Config`, or
    the path of a ``chaos.toml`` / ``pyproject.toml`` with ``overrides`` as ``--set`` takes
    them) and return the report; when its verdict is ``fail``, raise an AssertionError whose
    text is the report's summary (each finding, its scenario in words, its evidence, the
    line that replays its saved case): a :class:`SearchFailed`, which carries the report.

    ``stripe``: a fake Stripe already running that the target talks to (a
    :class:`FakeStripeSession`, e.g. the plugin's ``fake_stripe_server``, or its URL); None
    starts one on the config's ``stripe.port``. ``options`` are
    :class:`chaos.lifecycle.RunOptions` fields (``examples``, ``seed``, ``max_seconds``,
    ``concurrency``, ``corpus``, ...); ``report`` is where the JSON report goes (None: a
    temporary file, removed after). A target or infrastructure that cannot be used raises
    its :class:`~chaos.errors.ChaosError` (one line naming the fix)."""
    import tempfile

    from chaos import report as reports
    from chaos.lifecycle import RunOptions, run

    __tracebackhide__ = True   # pytest: the failure is the summary, not this function

    unknown = sorted((set(options) - set(RunOptions.__dataclass_fields__))
                     | ({"stripe_url"} & set(options)))
    if unknown:
        raise UsageError(f"search(): {unknown[0]} is not a run option here: use the fields of "
                         "chaos.lifecycle.RunOptions (the fake Stripe is stripe=)")
    loaded = _config(config, overrides)
    url = stripe.api_base if isinstance(stripe, FakeStripeSession) else stripe
    with tempfile.TemporaryDirectory(prefix="chaos-search-") as folder:
        path = report if report is not None else Path(folder) / "chaos-report.json"
        done = run(RunOptions(**options, report=path, stripe_url=url), config=loaded)
        if done.verdict == "fail":
            raise SearchFailed(reports.summary(done.to_data(), files={"report": report}),
                               done)
    return done


class SearchFailed(AssertionError):
    """A chaos search broke an invariant: the message is the report's summary; ``report``
    is the :class:`~chaos.report.Report` (``report.found``: the findings as objects)."""

    def __init__(self, summary: str, report: Report) -> None:
        super().__init__(summary)
        self.report = report


class ChaosTarget:
    """A target ready to run single scenarios: :meth:`execute` (the observation and the
    broken invariants) and :meth:`check` (an AssertionError when one broke). Made by
    :func:`running_target`, or the plugin's ``chaos_target`` fixture."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    @property
    def stripe_url(self) -> str:
        """The fake Stripe the scenarios are played at."""
        return self._runner.stripe_url

    def __repr__(self) -> str:
        return f"ChaosTarget(base_url={self._runner.target.base_url!r})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def execute(self, scenario: Scenario) -> ExampleResult:
        """Run one scenario against the target as the search runs an example (its own
        event and ticket types, its buyers, faults and waves; the rows read back) and
        return the :class:`~chaos.example.ExampleResult`: ``history``, ``observation``
        and ``violations`` (every invariant the target is held to, the user's included)."""
        return self._runner.run_example(scenario)

    def check(self, scenario: Scenario) -> ExampleResult:
        """:meth:`execute`, then an AssertionError naming each broken invariant and the
        scenario in words, when any broke."""
        __tracebackhide__ = True
        result = self.execute(scenario)
        if result.violations:
            lines = [f"{v.invariant}: {v.message}" for v in result.violations]
            raise AssertionError("\n".join([*lines, "scenario:", *(
                f"  {line}" for line in scenario.render())]))
        return result


@contextlib.contextmanager
def running_target(config: Config | str | Path, *,
                   stripe: FakeStripeSession | str | None = None,
                   overrides: Sequence[str] = (), concurrency: int = 10,
                   request_timeout: float = 10.0,
                   example_timeout: float = 60.0) -> Iterator[ChaosTarget]:
    """``config``'s target, checked (preflight) and ready for :meth:`ChaosTarget.execute`,
    with the fake Stripe given (``stripe``, as for :func:`search`) or one started on the
    config's ``stripe.port``; everything started is stopped after the block."""
    from chaos.run import configured_run

    loaded = _config(config, overrides)
    url = stripe.api_base if isinstance(stripe, FakeStripeSession) else stripe
    with configured_run(loaded, concurrency=concurrency, request_timeout=request_timeout,
                        example_timeout=example_timeout, stripe_url=url) as runner:
        yield ChaosTarget(runner)


def _config(config: Config | str | Path, overrides: Sequence[str]) -> Config:
    """A Config as given, or loaded from its file with ``overrides``."""
    from chaos.config import Config as _Config
    from chaos.config import load

    if isinstance(config, _Config):
        if overrides:
            raise UsageError("overrides are for a config file: change the Config itself "
                             "(dataclasses.replace)")
        return config
    return load(config, overrides)

"""The load mode's pure parts: profiles, the mix, thresholds, mergeable metrics (its
kept-alive connection: tests/test_keepalive.py)."""

from __future__ import annotations

import dataclasses
import random

import pytest

from chaos.history import Op, Outcome
from chaos.load.metrics import Metrics
from chaos.load.mix import FORGED, Mix, draw_journey, parse_mix
from chaos.load.profile import LoadProfile, parse_duration, parse_stages
from chaos.load.thresholds import parse_threshold, thresholds
from strategies import Delivery
from tests.helpers import ref_of


def test_stages_ramp_up_hold_and_ramp_down_as_k6_does():
    profile = LoadProfile(stages=parse_stages("10s:50,40s:50,10s:0"))
    assert profile.seconds == 60
    assert profile.max_vus == 50
    assert [profile.vus_at(t) for t in (0, 5, 10, 30, 50, 55, 60)] == [0, 25, 50, 50, 50, 25, 0]
    assert LoadProfile.constant(7, 3).vus_at(0) == 7
    assert LoadProfile.constant(7, 3).vus_at(3) == 0


@pytest.mark.parametrize("text, seconds", [("30s", 30), ("1m30s", 90), ("500ms", 0.5), ("2", 2)])
def test_durations_read_as_k6_writes_them(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("parse, text, words", [
    (parse_duration, "soon", "write e.g. 30s"),
    (parse_duration, "0s", "positive duration"),
    (parse_stages, "10s", "not DURATION:VUS"),
    (parse_stages, "10s:many", "not a whole number"),
    (parse_stages, "10s:0,5s:0", "never have a VU"),
    (parse_mix, "dupes=1", "KEY one of duplicates"),
    (parse_mix, "forged=2", "forged is a share"),
    (parse_mix, "capacity=1.5", "capacity must be a whole number"),
    (parse_threshold, "p95 < 5s", "unknown metric 'p95'"),
    (parse_threshold, "http-p95 = 5s", "is not METRIC"),
    (parse_threshold, "http-p95{door=webhook} < 5s", "tag 'door=webhook' must be"),
    (parse_threshold, "http-p95 < fast", "must be a latency"),
    (parse_threshold, "http-error-rate < 200%", "must be a share"),
])
def test_bad_input_names_the_fix(parse, text, words):
    with pytest.raises(ValueError, match=words):
        parse(text)


def test_a_journey_is_a_one_buyer_story_with_the_mix_s_chaos():
    calm = draw_journey(random.Random(1), parse_mix("duplicates=0,races=0,reorder=0,forged=0,"
                                                    "refunds=0,sellout=0"))
    assert [(s.event, s.copy, s.signature) for _, s in calm.deliveries()] == [
        ("checkout.session.completed", 0, "valid"), ("payment_intent.succeeded", 0, "valid")]
    assert calm.buyers[0].ticket_type == 0 and calm.buyers[0].outcome == "paid"

    stormy = Mix(duplicates=3, races=1, reorder=1, forged=1, refunds=1, sellout=1)
    journey = draw_journey(random.Random(2), stormy)
    events = [s.event for _, s in journey.deliveries() if s.copy == 0]
    assert events == ["charge.refunded", "payment_intent.succeeded", "checkout.session.completed"]
    assert all(s.signature in FORGED for _, s in journey.deliveries() if s.copy == 0)
    assert any(len(wave) == 2 and all(isinstance(s, Delivery) for s in wave)
               for wave in journey.waves)  # the completion's race
    assert journey.buyers[0].ticket_type == 1  # the tight ticket type
    # 1 forged + 1 valid (+1 raced for the completion) + 3 redeliveries per event
    assert journey.requests == 3 * (1 + 1 + 3) + 1


def test_a_seed_replays_the_same_journeys():
    def draws(seed: int) -> list[object]:
        rng = random.Random(seed)
        return [draw_journey(rng, Mix()) for _ in range(50)]
    assert draws(7) == draws(7)
    assert draws(7) != draws(8)


def op(kind: str, status: int | None, latency: float, **ref) -> Op:
    return Op(index=0, kind=kind, door="target", method="POST", path="/x", wave=None,
              step=None, start=1.0, end=1.0 + latency, status=status,
              outcome=Outcome.OK if status and 200 <= status < 300 else
              Outcome.INFO if status is None else Outcome.FAIL, body="", ref=ref_of(kind, **ref))


def test_thresholds_judge_per_endpoint_and_step_with_the_seed_s_defaults():
    metrics = Metrics()
    for i in range(100):
        metrics.add(op("deliver", 200, 0.010 + i / 10000, signature="valid", copy=0))
    metrics.add(op("deliver", 400, 0.002, signature="tampered", copy=0))  # refused: no error
    for _ in range(10):
        metrics.add(op("checkout", 500, 0.900))
    judged = {t.text: t.judge(metrics, seconds=10)
              for t in thresholds(["http-p95{endpoint=webhook} < 25ms", "http-p99 < 500ms",
                                   "checks{name=webhook answered 2xx} >= 100%"])}
    assert list(judged)[:2] == ["http-error-rate < 1%", "http-p95 < 5s"]  # the seed's
    assert judged["http-p95{endpoint=webhook} < 25ms"]["verdict"] == "pass"
    assert 19 < judged["http-p95{endpoint=webhook} < 25ms"]["value"] < 20.1
    assert judged["http-p99 < 500ms"]["verdict"] == "fail"
    assert judged["http-error-rate < 1%"]["verdict"] == "fail"   # 10 of 111 answered 500
    assert judged["http-error-rate < 1%"]["value"] == pytest.approx(10 / 111, abs=1e-6)
    assert judged["checks{name=webhook answered 2xx} >= 100%"]["verdict"] == "pass"
    # a threshold on the same metric and tags replaces its default
    assert [t.text for t in thresholds(["http-p95 < 1s"])] == ["http-error-rate < 1%",
                                                                "http-p95 < 1s"]


def test_metrics_merge_exactly_across_processes():
    one, two = Metrics(), Metrics()
    for i in range(500):
        (one if i % 2 else two).add(op("deliver", 200, i / 1000, copy=i % 3))
    merged = Metrics.decoded(one.encoded())
    merged.merge(Metrics.decoded(two.encoded()))
    whole = Metrics()
    for i in range(500):
        whole.add(op("deliver", 200, i / 1000, copy=i % 3))
    assert merged.select().figures(5) == whole.select().figures(5)
    assert merged.select(step="redeliver").requests == whole.select(step="redeliver").requests


def test_the_live_line_says_time_vus_rate_errors_p95_checks_and_what_broke():
    from chaos.load.summary import progress_line

    metrics = Metrics()
    for _ in range(99):
        metrics.add(op("deliver", 200, 0.020, copy=0))
    metrics.add(op("deliver", 503, 0.020, copy=1))
    line = progress_line(elapsed=10.0, total=60, vus=50, metrics=metrics,
                         broken=["one-ticket-set-per-payment"])
    assert "10.0 / 60 s" in line and "VUs 50" in line
    assert "100 req (10/s)" in line
    assert "errors 1.00%" in line
    assert "p95 20.0 ms" in line
    assert "checks 99.00%" in line
    assert "broken: one-ticket-set-per-payment" in line


def test_worker_results_cross_a_pipe_and_add_up():
    from chaos.load.runner import InvariantTally, LoadResult

    def result(requests: int, violations: int) -> LoadResult:
        metrics = Metrics()
        for i in range(requests):
            metrics.add(op("deliver", 200, 0.001 * (i + 1), copy=0))
        first = {"message": "two ticket sets"} if violations else None
        return LoadResult(metrics=metrics, seconds=10.0, journeys=requests, dropped=1,
                          intervals_checked=2, buyers_checked=requests,
                          invariants={"one-ticket-set-per-payment":
                                      InvariantTally(violations, int(bool(violations)), first)},
                          client_peak_in_flight=25, target_peak_in_flight=None, peak_vus=25,
                          connections=50, cpu_seconds=1.5,
                          in_profile={"webhook": requests - 1, "checkout": 1})

    merged = LoadResult.from_data(result(10, 0).to_data())
    merged.merge(LoadResult.from_data(result(30, 4).to_data()))
    assert merged.metrics.select().requests == 40
    assert merged.metrics.select().figures(10)["max_ms"] == pytest.approx(30, rel=0.001)
    assert (merged.journeys, merged.dropped, merged.peak_vus, merged.cpu_seconds) == (40, 2, 50, 3.0)
    assert merged.in_profile == {"webhook": 38, "checkout": 2}
    tally = merged.invariants["one-ticket-set-per-payment"]
    assert (tally.violations, tally.intervals, tally.first) == (4, 1, {"message": "two ticket sets"})


def test_a_journey_s_deliveries_keep_their_interval_buyer_and_race_once_resolved():
    """A journey is planned as buyer 0; its interval renumbers it, a race marks its copies,
    and resolving an event's ids when the copy is built must keep both (the metrics' race
    step and a violation's buyer read them)."""
    from chaos.load.runner import Interval
    from chaos.plan import FixtureIds, plan
    from chaos.target import Target

    mix = parse_mix("duplicates=1,races=1,reorder=0,forged=0,refunds=0,sellout=0")
    target = Target(base_url="http://127.0.0.1:9", webhook_secret="whsec_test", anon_key="a")
    interval = Interval(0, "ev", FixtureIds.default(draw_journey(random.Random(0), mix), "ev"))
    plans = []
    for seed in range(3):   # the third journey is the interval's buyer 2
        journey = draw_journey(random.Random(seed), mix)
        the_plan = plan(journey, target=target, stripe_url="http://127.0.0.1:8",
                        event_id="ev", ids=interval.ids)
        interval.join(journey, the_plan)
        plans.append(the_plan)
    binding = interval.bindings[2]
    binding.session_id, binding.payment_intent = "cs_test_1", "pi_test_1"
    for event_type in ("checkout.session.completed", "payment_intent.succeeded"):
        binding.events[event_type] = {"id": f"evt_{event_type}", "type": event_type,
                                      "data": {"object": {"payment_status": "paid"}}}
    race = next(p for p in plans[2].phases if len(p.calls) == 2)
    for call in race.calls:   # as LoadRun._race marks them before the executor builds them
        call.ref = dataclasses.replace(call.ref, race=True)
    deliveries = [c for p in plans[2].phases for c in p.calls if c.kind == "deliver"]
    for call in deliveries:
        assert call.build_wire is not None and call.build_wire() is not None
    refs = [call.ref for call in deliveries]
    assert {r.buyer for r in refs} == {2}
    assert [r.race for r in refs if r.event == "checkout.session.completed"][:2] == [True, True]
    assert all(r.event_id == f"evt_{r.event}" and r.session == "cs_test_1" for r in refs)


def test_an_evolved_reference_equals_what_replace_makes_and_refuses_a_misspelt_field():
    from chaos.history import DeliveryRef

    ref = DeliveryRef(buyer=0, event="checkout.session.completed", copy=2)
    evolved = ref.evolved(buyer=3, event_id="evt_1", race=True)
    assert evolved == dataclasses.replace(ref, buyer=3, event_id="evt_1", race=True)
    assert hash(evolved) == hash(dataclasses.replace(ref, buyer=3, event_id="evt_1", race=True))
    assert ref.buyer == 0 and ref.event_id is None   # the original is untouched
    with pytest.raises(TypeError, match="has no field evnt_id"):
        ref.evolved(evnt_id="evt_1")

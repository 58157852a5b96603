"""The bookkeeping of ``benchmarks/bench.py`` on fabricated figures: who is the
bottleneck, the ratios and goals, and py-spy's raw output read back. No load is
fired here: the benchmark itself does that."""

from __future__ import annotations

from pathlib import Path

from benchmarks import bench


def row(kind: str, rps: float, cpu_per_1000: float, client: float, service: float,
        busy: float) -> dict:
    return {"kind": kind, "requests": 6000, "failed": 0, "requests_per_second": rps,
            "client_cpu_per_1000": cpu_per_1000, "client_cores": client, "service_cores": service,
            "machine_busy_cores": busy, "p95_ms": 20.0}


def test_the_single_threaded_tool_is_the_bottleneck_at_a_core_k6_only_with_every_core():
    assert bench.bottleneck(row("tool", 2000, 0.4, 0.85, 0.4, 1.6), cpus=2).startswith("client")
    assert bench.bottleneck(row("k6", 6000, 0.1, 0.85, 0.4, 1.2), cpus=2).startswith("none")
    assert bench.bottleneck(row("k6", 6000, 0.1, 0.7, 0.9, 1.8), cpus=2).startswith("service")
    assert bench.bottleneck(row("k6", 6000, 0.1, 0.7, 0.6, 1.9), cpus=2).startswith("machine")
    assert bench.bottleneck(row("k6", 6000, 0.1, 1.7, 0.2, 1.9), cpus=2).startswith("client")


def test_ratios_are_of_medians_and_the_goals_follow_from_them():
    rounds = [row("tool", 2000, 0.4, 0.5, 0.4, 1.2), row("tool", 4000, 0.2, 0.5, 0.4, 1.2),
              row("tool", 3000, 0.3, 0.5, 0.4, 1.2),
              row("k6", 3200, 0.1, 0.5, 0.5, 1.5), row("k6", 3000, 0.1, 0.5, 0.5, 1.5),
              row("k6", 3400, 0.1, 0.5, 0.5, 1.5)]
    peaks = [{"size": 50, "service_peak_min": 49, "service_peak_max": 50, "runs": 3}]
    summary = bench.summarize(rounds, [row("k6", 5000, 0.1, 0.5, 0.9, 1.9)], peaks, 50, 2)
    assert summary["ratios"]["tool/k6"] == {"requests_per_second": round(3000 / 3200, 3),
                                            "client_cpu_per_1000": 3.0}
    assert summary["ceiling_requests_per_second"] == 5000
    met = [g["met"] for g in summary["goals"]]
    assert met == [True, False, True]          # 94% of k6; 49 of 50 seen; tool never saturated


def test_py_spy_raw_output_is_read_as_shares_under_the_root(tmp_path: Path):
    raw = tmp_path / "raw.txt"
    raw.write_text(
        "main (/x/bench.py:1);tool_round (/x/bench.py:2);Executor._send (/x/executor.py:3);"
        "_SocketType.connect (/y/_socket.py:4) 6\n"
        "main (/x/bench.py:1);tool_round (/x/bench.py:2);sign (/x/signing.py:9) 2\n"
        "main (/x/bench.py:1);time.sleep (/z/time.py:1) 12\n")
    found = bench.top_frames(raw, root="tool_round")
    assert found["samples"] == 8                # the sleep outside tool_round is not counted
    assert found["self"][0] == {"function": "_SocketType.connect (_socket.py)", "share": 0.75}
    assert {"function": "Executor._send (executor.py)", "share": 0.75} in found["inclusive"]
    assert all(f["function"] != "tool_round (bench.py)" for f in found["inclusive"])


def test_the_service_gets_the_lowest_core_and_the_rest_get_the_others():
    assert bench.cores_for({0, 1}) == ({0}, {1})
    assert bench.cores_for({2, 3, 5}) == ({2}, {3, 5})
    assert bench.cores_for({0}) is None     # one core: nothing to pin


def test_the_load_mode_is_at_the_ceiling_only_at_k6s_rate_when_both_saturate_the_service():
    k6 = bench.JOURNEYS    # k6 playing the same journeys, not its redelivery rounds
    medians = {k6: {"requests_per_second": 4000, "service_cores": 0.95},
               "k6": {"requests_per_second": 9000, "service_cores": 0.95},
               "load": {"requests_per_second": 2600, "service_cores": 0.83}}
    slower = {f"load/{k6}": {"requests_per_second": 0.65, "client_cpu_per_1000": 1.4}}
    assert bench.load_goals(medians, slower, ["load"], 50)[0]["met"] is False
    medians["load"]["requests_per_second"] = 3900
    same = {f"load/{k6}": {"requests_per_second": 0.975, "client_cpu_per_1000": 1.4}}
    assert bench.load_goals(medians, same, ["load"], 50)[0]["met"] is True
    medians["load"]["service_cores"] = 0.5     # the same rate, the service not saturated
    assert bench.load_goals(medians, same, ["load"], 50)[0]["met"] is False
    dearer = {f"load/{k6}": {"requests_per_second": 0.975, "client_cpu_per_1000": 2.5}}
    assert bench.load_goals(medians, dearer, ["load"], 50)[1]["met"] is False


def test_the_load_mode_is_compared_with_k6_playing_its_journeys():
    rounds = [row("k6", 9000, 0.1, 0.5, 0.9, 1.9), row(bench.JOURNEYS, 3000, 0.12, 0.4, 0.9, 1.8),
              row("load", 3100, 0.13, 0.45, 0.9, 1.8)]
    summary = bench.summarize(rounds, [], [], 50, 2)
    assert summary["ratios"][f"load/{bench.JOURNEYS}"]["requests_per_second"] == round(3100 / 3000, 3)
    assert f"tool/{bench.JOURNEYS}" not in summary["ratios"] and "load/k6" not in summary["ratios"]
    assert [g["met"] for g in summary["goals"][-2:]] == [True, True]

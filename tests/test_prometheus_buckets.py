"""metrics.prom: the attempt-duration histogram tells a sub-second groth16 proof from a
minutes-long ezkl proof (buckets from 0.1 s to 1 h), instead of putting both in +Inf."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from pot_zk.proving.stats import ProvingStats


def buckets(stats: ProvingStats, tmp_path) -> dict[str, float]:
    """le -> cumulative count of the attempt histogram, read back from the written metrics.prom."""
    _, prom = stats.write(tmp_path)
    families = {f.name: f for f in text_string_to_metric_families(prom.read_text())}
    return {s.labels["le"]: s.value for s in families["pot_zk_proof_attempt_seconds"].samples if s.name.endswith("_bucket")}


def test_attempt_durations_from_a_tenth_of_a_second_to_an_hour_land_in_buckets_of_their_own(tmp_path):
    stats = ProvingStats()
    for seconds in (0.08, 0.3, 45.0, 240.0, 3000.0):
        stats.record_attempt("zk-halo2", seconds, None)
    counts = buckets(stats, tmp_path)
    assert counts["0.1"] == 1
    assert counts["0.5"] == 2
    assert counts["30.0"] == 2 and counts["60.0"] == 3
    assert counts["120.0"] == 3 and counts["300.0"] == 4
    assert counts["1800.0"] == 4 and counts["3600.0"] == 5
    assert counts["+Inf"] == 5

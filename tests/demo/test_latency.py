import random
import statistics

from demo.latency import LatencyProfile, retry_backoff_ms, sample_latency_ms


def _samples(profile: LatencyProfile, n: int = 20_000) -> list[float]:
    rng = random.Random(42)
    return sorted(sample_latency_ms(profile, rng) for _ in range(n))


def test_latencies_centre_on_the_median():
    samples = _samples(LatencyProfile(median_ms=100))
    assert 90 < statistics.median(samples) < 110


def test_latencies_have_a_long_tail():
    samples = _samples(LatencyProfile(median_ms=100, tail_share=0.02, tail_factor=8))
    p50, p99 = samples[len(samples) // 2], samples[int(len(samples) * 0.99)]
    assert p99 > 6 * p50  # a bell curve would put p99 near 2 x p50
    assert samples[-1] <= LatencyProfile(median_ms=100).max_ms


def test_without_a_tail_latencies_stay_near_the_median():
    samples = _samples(LatencyProfile(median_ms=100, tail_share=0.0))
    assert samples[int(len(samples) * 0.99)] < 3 * 100


def test_the_same_seed_gives_the_same_latencies():
    profile = LatencyProfile(median_ms=50)
    first = [sample_latency_ms(profile, random.Random(1)) for _ in range(3)]
    assert first == [sample_latency_ms(profile, random.Random(1)) for _ in range(3)]


def test_retry_backoff_doubles_up_to_a_cap():
    assert [retry_backoff_ms(attempt) for attempt in (1, 2, 3)] == [200, 400, 800]
    assert retry_backoff_ms(20) == 5_000

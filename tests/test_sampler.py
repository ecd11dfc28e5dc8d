import numpy as np
import pytest

from superb.downstream.sampler import DurationBatchSampler


def _lengths(n=500, seed=0):
    return np.random.default_rng(seed).integers(8000, 16000 * 15, size=n)


def test_no_batch_exceeds_its_budget_and_every_utterance_is_used_once():
    lengths = _lengths()
    budget = 16000 * 40
    s = DurationBatchSampler(lengths, budget, shuffle=True, seed=3)
    for epoch in range(5):
        batches = s.epoch_batches(epoch)
        costs = [max(lengths[b]) * len(b) for b in batches]
        assert max(costs) <= budget
        flat = sorted(i for b in batches for i in b)
        assert flat == list(range(len(lengths)))  # nothing dropped, nothing repeated
    # padding stays small thanks to length pooling: most batches hold several utterances
    assert np.mean([len(b) for b in s.epoch_batches(0)]) > 3


def test_batches_depend_only_on_seed_and_epoch():
    lengths = _lengths()
    a = DurationBatchSampler(lengths, 16000 * 30, seed=1)
    b = DurationBatchSampler(lengths, 16000 * 30, seed=1)
    assert a.epoch_batches(4) == b.epoch_batches(4)
    assert a.epoch_batches(4) != a.epoch_batches(5)
    assert a.epoch_batches(4) != DurationBatchSampler(lengths, 16000 * 30, seed=2).epoch_batches(4)


def test_eval_batches_cover_everything_in_length_order():
    lengths = _lengths(50)
    s = DurationBatchSampler(lengths, 16000 * 30, shuffle=False)
    flat = [i for b in s.epoch_batches() for i in b]
    assert sorted(flat) == list(range(50))
    assert list(lengths[flat]) == sorted(lengths)


def test_class_balanced_sampling_evens_out_classes():
    labels = ["a"] * 900 + ["b"] * 100
    s = DurationBatchSampler([16000] * 1000, 16000 * 32, seed=0, class_labels=labels)
    drawn = [labels[i] for e in range(3) for b in s.epoch_batches(e) for i in b]
    share_b = drawn.count("b") / len(drawn)
    assert 0.45 < share_b < 0.55
    assert all(len(b) <= 32 for b in s.epoch_batches(0))


def test_an_utterance_longer_than_the_budget_is_an_error_naming_it():
    with pytest.raises(ValueError, match="utt-long"):
        DurationBatchSampler([16000, 16000 * 100], 16000 * 30, ids=["utt-short", "utt-long"])

"""Shared fixtures: small corpora written in the exact on-disk layouts of the real ones."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

torch.set_num_threads(1)

SR = 16000
KS_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")


def speechlike(seconds: float = 1.2, seed: int = 0, f0: float = 140.0) -> np.ndarray:
    """A harmonic signal with a 3 Hz envelope and a little noise: speech-like enough for PESQ, STOI,
    WORLD and STFT masks (float64, 16 kHz)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    env = 0.5 * (1 + np.sin(2 * np.pi * 3 * t))
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 12)) * env
    return (0.3 * x / np.max(np.abs(x)) + 0.003 * rng.standard_normal(len(t))).astype(np.float64)


def tone(freq: float, seconds: float, seed: int, sr: int = SR) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def write_speech_commands(root: Path, speakers=("aaaa0001", "bbbb0002", "cccc0003", "dddd0004"),
                          extra_words=("bed", "cat"), test_per_label: int = 1) -> Path:
    """Speech Commands v0.01 layout: word folders, lists, background noise, test archive."""
    train = root / "speech_commands_v0.01"
    words = KS_WORDS + tuple(extra_words)
    val, tst = [], []
    for wi, word in enumerate(words):
        (train / word).mkdir(parents=True, exist_ok=True)
        for si, spk in enumerate(speakers):
            rel = f"{word}/{spk}_nohash_0.wav"
            sf.write(train / rel, tone(200 + 60 * wi, 1.0, wi * 100 + si), SR, subtype="PCM_16")
            if si == len(speakers) - 1:
                val.append(rel)
            elif si == len(speakers) - 2 and len(speakers) > 3:
                tst.append(rel)
    (train / "validation_list.txt").write_text("\n".join(val) + "\n")
    (train / "testing_list.txt").write_text("\n".join(tst) + "\n")
    (train / "_background_noise_").mkdir(exist_ok=True)
    rng = np.random.default_rng(7)
    sf.write(train / "_background_noise_" / "white_noise.wav",
             (0.05 * rng.standard_normal(SR * 12)).astype(np.float32), SR, subtype="PCM_16")
    test = root / "speech_commands_test_set_v0.01"
    labels = KS_WORDS + ("_unknown_", "_silence_")
    for li, label in enumerate(labels):
        (test / label).mkdir(parents=True, exist_ok=True)
        for k in range(test_per_label):
            if label == "_silence_":
                audio = (0.05 * rng.standard_normal(SR)).astype(np.float32)
            elif label == "_unknown_":
                audio = tone(200 + 60 * len(KS_WORDS), 1.0, 5000 + k)
            else:
                audio = tone(200 + 60 * li, 1.0, 9000 + li * 10 + k)
            sf.write(test / label / f"eeee{li:04d}_nohash_{k}.wav", audio, SR, subtype="PCM_16")
    return root


def write_librispeech(root: Path, split: str, speakers=(19, 26), chapters=(198,), utts=3,
                      texts=("HELLO WORLD", "IT'S A TEST", "GOOD MORNING TO YOU")) -> Path:
    """LibriSpeech layout: <split>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac + .trans.txt."""
    for spk in speakers:
        for ch in chapters:
            d = root / "LibriSpeech" / split / str(spk) / str(ch)
            d.mkdir(parents=True, exist_ok=True)
            lines = []
            for u in range(utts):
                utt = f"{spk}-{ch}-{u:04d}"
                sf.write(d / f"{utt}.flac", tone(150 + 40 * u, 0.5 + 0.25 * u, spk + u), SR,
                         format="FLAC", subtype="PCM_16")
                lines.append(f"{utt} {texts[u % len(texts)]}")
            (d / f"{spk}-{ch}.trans.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def ks_data(tmp_path) -> Path:
    return write_speech_commands(tmp_path / "sc")


@pytest.fixture
def libri_data(tmp_path) -> Path:
    root = tmp_path / "libri"
    for split in ("train-clean-100", "dev-clean", "test-clean"):
        write_librispeech(root, split)
    return root


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Tests never touch the user's cache; the mini corpus is shared across one test session."""
    if "SUPERB_TEST_CACHE" not in os.environ:
        os.environ["SUPERB_TEST_CACHE"] = str(tmp_path_factory.getbasetemp() / "superb-cache")
    monkeypatch.setenv("SUPERB_CACHE_DIR", os.environ["SUPERB_TEST_CACHE"])


@pytest.fixture(scope="module")
def mini_data(tmp_path_factory):
    """The pretraining audio of the tests: the tiny mini corpus's LibriSpeech train subset (9 files,
    20 s). Module scope runs before the per-test cache isolation above: the test cache is named."""
    from superb.upstream.pretrain.loop import default_data

    cache = os.environ.setdefault("SUPERB_TEST_CACHE", str(tmp_path_factory.getbasetemp() / "superb-cache"))
    return default_data("tiny", cache_dir=cache)


def pretrain_log(folder) -> list:
    """The lines of a pretraining run's ``log.jsonl``."""
    import json

    return [json.loads(line) for line in (Path(folder) / "log.jsonl").read_text().splitlines()]


def assert_resume_exact(name: str, data, tmp_path, steps: int, sets=(), seed: int = 3, after_first=None):
    """Pretrain ``name`` for ``steps`` steps straight (saving at ``steps // 2``) and, in
    ``tmp_path / "resumed"``, for ``steps // 2`` steps, then ``--resume`` to ``steps``
    (``after_first(folder)`` runs in between, e.g. to leave a line a killed run logged past its
    save). Asserts the same log lines (wall time aside) and bit-identical weights; returns both
    ``checkpoints/last.pt`` dicts (straight, resumed)."""
    from superb.upstream.pretrain.loop import pretrain

    half = steps // 2
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    pretrain(name, straight, data=data, max_steps=steps, save_every=half, seed=seed, progress=False, sets=sets)
    pretrain(name, resumed, data=data, max_steps=half, seed=seed, progress=False, sets=sets)
    if after_first is not None:
        after_first(resumed)
    pretrain(name, resumed, data=data, max_steps=steps, seed=seed, resume=True, progress=False, sets=sets)

    def lines(folder):
        return [{k: v for k, v in line.items() if k != "wall_s"} for line in pretrain_log(folder)]

    assert [line["step"] for line in lines(resumed)] == list(range(1, steps + 1))
    assert lines(resumed) == lines(straight)
    a = torch.load(straight / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(resumed / "checkpoints" / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == steps
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    return a, b


def loss_means(folder, steps: int, n: int = 5):
    """(mean of the first ``n``, mean of the last ``n``) losses of a pretraining run's log, after
    checking it logged every step 1 .. ``steps`` once."""
    lines = pretrain_log(folder)
    assert [line["step"] for line in lines] == list(range(1, steps + 1))
    losses = [line["loss"] for line in lines]
    return float(np.mean(losses[:n])), float(np.mean(losses[-n:]))

"""SD: kaldi-style loader, frame labels at 160/320 samples, PIT loss, a short run (DER itself:
tests/test_metrics_diarization.py)."""
import numpy as np
import pytest
import soundfile as sf
import torch

from superb.benchmark.config import resolve_config
from superb.benchmark.runner import Runner
from superb.downstream.tasks import TaskContext
from superb.downstream.tasks.sd import (ChunkLabel, SpeakerDiarization, frame_labels, pit_bce,
                                        posteriors_to_segments, read_kaldi_dir)

SR = 16000


def _write_split(d, recordings):
    """recordings: {rec: (seconds, [(speaker, start, end), ...])} -> kaldi dir with tone audio."""
    (d / "wav").mkdir(parents=True)
    scp, segs, u2s, r2d, rttm = [], [], [], [], []
    for rec, (secs, turns) in recordings.items():
        audio = np.zeros(int(secs * SR), dtype=np.float32)
        for k, (spk, st, et) in enumerate(turns):
            f = 220.0 if spk == "A" else 480.0
            t = np.arange(int(st * SR), int(et * SR))
            audio[t] += 0.2 * np.sin(2 * np.pi * f * t / SR)
            utt = f"{rec}_{spk}_{k}"
            segs.append(f"{utt} {rec} {st} {et}")
            u2s.append(f"{utt} {spk}")
            rttm.append(f"SPEAKER {rec} 1 {st} {et - st:.3f} <NA> <NA> {spk} <NA> <NA>")
        sf.write(d / "wav" / f"{rec}.wav", audio, SR, subtype="PCM_16")
        scp.append(f"{rec} wav/{rec}.wav")
        r2d.append(f"{rec} {secs}")
    for name, lines in (("wav.scp", scp), ("segments", segs), ("utt2spk", u2s), ("reco2dur", r2d), ("rttm", rttm)):
        (d / name).write_text("\n".join(lines) + "\n")


@pytest.fixture
def sd_data(tmp_path):
    root = tmp_path / "sd"
    conv = {"r1": (3.0, [("A", 0.2, 1.4), ("B", 1.2, 2.5)]), "r2": (2.0, [("B", 0.1, 0.9), ("A", 1.0, 1.9)])}
    for split in ("train", "dev", "test"):
        _write_split(root / split, conv)
    return root


def _task(rate=160, **cfg):
    base = {"splits": {"train": "train", "dev": "dev", "test": "test"}, "num_speakers": 2, "chunk_size": 2000,
            "thresholds": [0.3, 0.5, 0.7], "median_filters": [1, 11], "rnn_layers": 1, "hidden_size": 8}
    base.update(cfg)
    return SpeakerDiarization(base, TaskContext(downsample_rate=rate))


def test_kaldi_dir_frames_and_chunks(sd_data):
    recs, rttm = read_kaldi_dir(sd_data / "dev", 2, need_rttm=True)
    assert sorted(recs) == ["r1", "r2"] and recs["r1"][3] == ("A", "B")
    assert rttm["r1"]["B"] == [(1.2, 2.5)]
    for rate in (160, 320, 640):
        task = _task(rate, chunk_size=100)
        splits = task.prepare(sd_data)
        n = int(3.0 * SR / rate)  # r1 label frames
        chunks = [e for e in splits["train"] if e.label.recording == "r1"]
        assert sum(e.label.num_frames for e in chunks) == n
        assert all(e.audio.num_samples == e.label.num_frames * rate for e in chunks)
        assert [e.label.start_frame for e in chunks] == list(range(0, n, 100))[:len(chunks)]
        full = np.concatenate([frame_labels(e.label, rate, 2) for e in chunks])
        a0, a1 = int(np.rint(0.2 * SR / rate)), int(np.rint(1.4 * SR / rate))
        assert full[:, 0].nonzero()[0].tolist() == list(range(a0, a1))
        assert full[a1:, 0].sum() == 0 and full[int(np.rint(1.2 * SR / rate)), 1] == 1
    # a remainder chunk too short for an upstream joins the previous chunk
    task = _task(chunk_size=149)
    r2 = [e for e in task.prepare(sd_data)["dev"] if e.label.recording == "r2"]  # 200 frames = 149 + 51
    assert [e.label.num_frames for e in r2] == [149, 51]
    task = _task(chunk_size=198)  # 200 = 198 + 2 frames (320 samples < 400): merged
    r2 = [e for e in task.prepare(sd_data)["dev"] if e.label.recording == "r2"]
    assert [e.label.num_frames for e in r2] == [200]


def test_bad_kaldi_dirs_are_named(sd_data):
    (sd_data / "dev" / "rttm").unlink()
    task = _task()
    with pytest.raises(FileNotFoundError, match=r"dev/rttm"):
        task.prepare(sd_data)
    (sd_data / "test" / "segments").write_text("u1 r9 0.0 1.0\n")
    with pytest.raises(ValueError, match=r"segments:1: recording 'r9' is not in wav.scp"):
        read_kaldi_dir(sd_data / "test", 2, need_rttm=False)
    (sd_data / "test" / "segments").write_text("u1 r1 0.0 1.0\nu2 r1 1.0 2.0\nu3 r1 2.0 2.5\nu4 r2 0 1\n")
    (sd_data / "test" / "utt2spk").write_text("u1 A\nu2 B\nu3 C\nu4 A\n")
    with pytest.raises(ValueError, match=r"'r1' has 3 speakers \['A', 'B', 'C'\]"):
        read_kaldi_dir(sd_data / "test", 2, need_rttm=False)
    (sd_data / "test" / "segments").write_text("u1 r1 zero 1.0\n")
    with pytest.raises(ValueError, match=r"segments:1: start 'zero' is not a number"):
        read_kaldi_dir(sd_data / "test", 2, need_rttm=False)


def test_pit_loss_ignores_speaker_order():
    torch.manual_seed(0)
    logits = torch.randn(2, 7, 2)
    labels = (torch.rand(2, 7, 2) > 0.5).float()
    a = pit_bce(logits, labels, [7, 5])
    b = pit_bce(logits, labels[..., [1, 0]], [7, 5])
    assert torch.allclose(a, b)
    # the loss equals plain BCE under the better of the two orders (item 0 alone)
    plain = torch.nn.functional.binary_cross_entropy_with_logits
    best = min(plain(logits[0], labels[0]), plain(logits[0], labels[0][:, [1, 0]]))
    assert torch.allclose(pit_bce(logits[:1], labels[:1], [7]), best)


def test_post_processing_threshold_and_median():
    post = np.zeros((20, 2), dtype=np.float32)
    post[2:8, 0] = 0.9
    post[10, 0] = 0.9  # an isolated frame: removed by a median filter
    post[12:18, 1] = 0.6
    segs = posteriors_to_segments(post, 0.5, 1, 160)
    assert np.allclose(segs[0], [(0.02, 0.08), (0.10, 0.11)]) and np.allclose(segs[1], [(0.12, 0.18)])
    segs = posteriors_to_segments(post, 0.7, 3, 320)
    assert np.allclose(segs[0], [(0.04, 0.16)]) and segs[1] == []


def test_short_run_writes_rttm_and_frame_shift(sd_data, tmp_path):
    sets = {"runner.total_steps": 3, "runner.eval_every": 3, "runner.save_every": 3, "runner.log_every": 1,
            "runner.accumulate": 1, "task.hidden_size": 8, "batch.max_seconds": 10.0}
    cfg = resolve_config("sd", use_mini=False, sets=[f"{k}={v}" for k, v in sets.items()])
    cfg.update({"upstream": {"name": "fbank", "ckpt": None, "random_init": False, "options": {}},
                "data": {"dir": str(sd_data)}, "device": "cpu"})
    res = Runner(cfg, tmp_path / "run", progress=False).run()
    m = res["metrics"]["test"]
    assert m["der"] == pytest.approx(m["miss"] + m["false_alarm"] + m["confusion"])
    pred = tmp_path / "run" / "predictions" / "test"
    assert (pred / "frame_shift").read_text().strip() == "160"
    assert sorted(p.name for p in (pred / "posteriors").iterdir()) == ["r1.npy", "r2.npy"]
    assert np.load(pred / "posteriors" / "r1.npy").shape == (300, 2)
    for line in (pred / "hyp.rttm").read_text().splitlines():
        f = line.split()
        assert f[0] == "SPEAKER" and f[1] in ("r1", "r2") and float(f[4]) > 0


def test_chunk_label_rounding_matches_s3prl():
    lab = ChunkLabel("r", 0, 0, 10, ("A",), (((0.0149, 0.0251),),))
    # rint(0.0149 * 16000 / 160) = rint(1.49) = 1; rint(2.51) = 3
    assert frame_labels(lab, 160, 2)[:, 0].tolist() == [0, 1, 1, 0, 0, 0, 0, 0, 0, 0]


def test_mini_diarization_split_parses():
    from superb.downstream.mini import ensure_split

    data = ensure_split("diarization", profile="tiny", progress=False)
    task = _task(320)
    splits = task.prepare(data)
    assert {k: len(v) for k, v in splits.items()} == {"train": 4, "dev": 2, "test": 2}
    assert all(len(e.label.speakers) == 2 and e.label.reference for e in splits["test"])


def test_head_outputs_do_not_depend_on_padding():
    from superb.downstream.tasks.sd import LSTMDiarizationHead

    torch.manual_seed(0)
    head = LSTMDiarizationHead(4, 6, 1, 2)
    x = torch.randn(2, 10, 4)
    batch = head(x, [10, 6])
    alone = head(x[1:, :6], [6])
    assert torch.allclose(batch[1, :6], alone[0], atol=1e-6)

"""SID, ASV, ER and IC: loaders on fixtures in the real layouts, metrics against independent
computations, heads, crops, recipes and the mini-corpus splits parsed by the real loaders."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from superb.benchmark.config import resolve_config
from superb.benchmark.runner import Runner, run_benchmark
from superb.downstream.audio import AudioSegment
from superb.downstream.sampler import DurationBatchSampler
from superb.downstream.tasks import Example, get_task
from superb.downstream.corpora.fluent_speech_commands import fluent_commands_manifest
from superb.downstream.corpora.iemocap import iemocap_manifest
from superb.downstream.corpora.voxceleb1 import read_trials, voxceleb1_identification, voxceleb1_verification
from superb.downstream.crops import RandomCrops
from superb.downstream.tasks.asv import TDNN_SHRINK, SpeakerVerification, XVectorHead, am_softmax_loss
from superb.downstream.tasks.er import EmotionRecognition, fold_splits
from superb.downstream.tasks.ic import IntentClassification
from superb.downstream.tasks.sid import SpeakerIdentification

from conftest import SR, tone
from test_metrics_verification import _sklearn_eer


# -- fixtures in the official layouts ----------------------------------------------------------
def write_voxceleb1(root: Path, layout: str = "merged", short: bool = True) -> Path:
    """VoxCeleb1: 3 dev speakers (id10001-3) and 2 test speakers (id10270-1), 2 videos x 2 files.

    ``merged``: one ``wav/`` (both archives unpacked together); ``split``: s3prl's ``dev/wav`` and
    ``test/wav``. With ``short`` each dev speaker's first file lasts 1.5 s (dropped by ASV)."""
    iden, k = [], 0
    for spk in ("id10001", "id10002", "id10003", "id10270", "id10271"):
        test_spk = spk >= "id10270"
        base = root / ("wav" if layout == "merged" else ("test/wav" if test_spk else "dev/wav"))
        for vi, video in enumerate(("aaaaaaaaaaa", "b-b_bbbbbbb")):
            for n in (1, 2):
                rel = f"{spk}/{video}/{n:05d}.wav"
                seconds = 1.5 if (short and not test_spk and vi == 0 and n == 1) else 2.5 + 0.5 * n
                (base / rel).parent.mkdir(parents=True, exist_ok=True)
                sf.write(base / rel, tone(150 + 30 * int(spk[-1]) + 5 * n, seconds, k), SR, subtype="PCM_16")
                iden.append(f"{3 if vi == 1 and n == 2 else 2 if vi == 1 else 1} {rel}")
                k += 1
    (root / "iden_split.txt").write_text("\n".join(iden) + "\n")
    trials = ["1 id10270/aaaaaaaaaaa/00001.wav id10270/b-b_bbbbbbb/00002.wav",
              "0 id10270/aaaaaaaaaaa/00001.wav id10271/aaaaaaaaaaa/00001.wav",
              "1 id10271/aaaaaaaaaaa/00002.wav id10271/b-b_bbbbbbb/00001.wav",
              "0 id10271/b-b_bbbbbbb/00002.wav id10270/aaaaaaaaaaa/00002.wav"]
    (root / "veri_test.txt").write_text("\n".join(trials) + "\n")
    return root


def write_iemocap(root: Path) -> Path:
    """IEMOCAP: 5 sessions, one dialog each, 6 utterances with neu/hap/exc/ang/sad/fru/xxx labels."""
    labels = ["neu", "hap", "exc", "ang", "sad", "fru", "xxx", "neu"]
    for s in range(1, 6):
        dialog = f"Ses{s:02d}F_impro01"
        wav_dir = root / f"Session{s}" / "sentences" / "wav" / dialog
        emo_dir = root / f"Session{s}" / "dialog" / "EmoEvaluation"
        wav_dir.mkdir(parents=True, exist_ok=True)
        (emo_dir / "Categorical").mkdir(parents=True, exist_ok=True)
        (emo_dir / "Categorical" / f"{dialog}_e1_cat.txt").write_text(f"{dialog}_F000 :Neutral state; ()\n")
        lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        t = 1.0
        for i, lab in enumerate(labels):
            utt = f"{dialog}_{'FM'[i % 2]}{i // 2:03d}"
            sf.write(wav_dir / f"{utt}.wav", tone(120 + 20 * i, 0.5, s * 10 + i), SR, subtype="PCM_16")
            lines += [f"[{t:.4f} - {t + 0.5:.4f}]\t{utt}\t{lab}\t[2.5000, 2.5000, 2.5000]",
                      "C-E2:\tNeutral;\t()", "A-E3:\tval 3; act 2; dom  2;\t()", ""]
            t += 1.0
        (emo_dir / f"{dialog}.txt").write_text("\n".join(lines) + "\n")
    return root


FSC_ROWS = {
    "train": [("spkA", "Turn on the lights", "activate", "lights", "none"),
              ("spkA", "Bring me the newspaper", "bring", "newspaper", "none"),
              ("spkB", "Change language", "change language", "none", "none"),
              ("spkB", "Turn up the heat in the kitchen", "increase", "heat", "kitchen")],
    "valid": [("spkC", "Lights on", "activate", "lights", "none")],
    "test": [("spkD", "Heat up the kitchen, please", "increase", "heat", "kitchen"),
             ("spkD", "Switch language", "change language", "none", "none")],
}


def write_fsc(root: Path, rows=FSC_ROWS) -> Path:
    """Fluent Speech Commands: data/{train,valid,test}_data.csv + wavs/speakers/<spk>/<name>.wav."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    k = 0
    for split, items in rows.items():
        with open(root / "data" / f"{split}_data.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["", "path", "speakerId", "transcription", "action", "object", "location"])
            for i, (spk, text, a, o, loc) in enumerate(items):
                rel = f"wavs/speakers/{spk}/{k:04x}-4474-11e9.wav"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                sf.write(root / rel, tone(200 + 10 * k, 0.6, k), SR, subtype="PCM_16")
                w.writerow([i, rel, spk, text, a, o, loc])
                k += 1
    return root


# -- SID ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["merged", "split"])
def test_sid_reads_iden_split(tmp_path, layout):
    root = write_voxceleb1(tmp_path / "vox", layout)
    splits = voxceleb1_identification(root)
    assert {k: len(v) for k, v in splits.items()} == {"train": 10, "dev": 5, "test": 5}
    test = splits["test"]
    assert [e.id for e in test][:2] == ["id10001-b-b_bbbbbbb-00002", "id10002-b-b_bbbbbbb-00002"]
    assert {e.label for e in splits["train"]} == {"id10001", "id10002", "id10003", "id10270", "id10271"}
    assert test[0].audio.num_samples == 56000 and test[0].audio.path.endswith("id10001/b-b_bbbbbbb/00002.wav")
    task = SpeakerIdentification({"projector_dim": 8, "crop_seconds": 2.0})
    splits = task.prepare(root)
    assert task.speakers == ["id10001", "id10002", "id10003", "id10270", "id10271"]
    # training examples stand for their 2 s crops; dev/test keep whole files
    assert max(e.audio.num_samples for e in splits["train"]) == 2 * SR
    assert task.data_notes["train_files_longer_than_crop"] == 7  # the three 1.5 s files are shorter


def test_sid_bad_split_file_and_missing_audio(tmp_path):
    root = write_voxceleb1(tmp_path / "vox")
    (root / "iden_split.txt").write_text("1 id10001/aaaaaaaaaaa/00001.wav\n4 id10001/aaaaaaaaaaa/00002.wav\n")
    with pytest.raises(ValueError, match=r"iden_split.txt:2: expected"):
        voxceleb1_identification(root)
    (root / "iden_split.txt").write_text("1 id10001/aaaaaaaaaaa/00009.wav\n")
    with pytest.raises(FileNotFoundError, match=r"iden_split.txt:1: audio file id10001/aaaaaaaaaaa/00009.wav not found"):
        voxceleb1_identification(root)
    (root / "iden_split.txt").write_text("1 id10001/aaaaaaaaaaa/00001.wav\n2 id10002/aaaaaaaaaaa/00001.wav\n"
                                         "3 id10001/aaaaaaaaaaa/00002.wav\n")
    with pytest.raises(ValueError, match="dev speakers without training files: id10002"):
        voxceleb1_identification(root)


def test_random_crops_are_deterministic_and_inside_the_file():
    crops = RandomCrops(2 * SR)
    ex = [Example("a", AudioSegment("/x/a.wav", 5 * SR, 100), "s1"), Example("b", AudioSegment("/x/b.wav", SR), "s2")]
    reg = crops.register(ex)
    assert [e.audio.num_samples for e in reg] == [2 * SR, SR] and reg[0].audio.start == 100
    # the batch sampler packs by crop length
    assert DurationBatchSampler([e.audio.num_samples for e in reg], 4 * SR, shuffle=False).epoch_batches() == [[1, 0]]
    a1 = crops.apply(reg, epoch=3, seed=7)
    assert a1 == crops.apply(reg, epoch=3, seed=7)  # pure function of (seed, epoch, id)
    assert a1[1] == reg[1]  # shorter than the crop: unchanged
    starts = {crops.apply(reg, epoch=e, seed=7)[0].audio.start for e in range(20)}
    assert len(starts) > 5 and all(100 <= s <= 100 + 3 * SR for s in starts)
    assert all(crops.apply(reg, epoch=e, seed=7)[0].audio.num_samples == 2 * SR for e in range(5))


# -- ASV -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["merged", "split"])
def test_asv_training_set_filter_and_trials(tmp_path, layout, capsys):
    root = write_voxceleb1(tmp_path / "vox", layout)
    splits, trials, notes = voxceleb1_verification(root)
    # 3 dev speakers x 4 files, one 1.5 s file each dropped (<= 2 s), test speakers never trained on
    assert len(splits["train"]) == 9 and notes["train_files_dropped_short"] == 3
    assert {e.label for e in splits["train"]} == {"id10001", "id10002", "id10003"}
    assert notes["trial_speakers_held_out_of_training"] == (2 if layout == "merged" else 0)
    assert notes["trials"]["test"] == {"target": 2, "nontarget": 2}
    assert trials["dev"] == trials["test"] and trials["test"][0] == (1, "id10270/aaaaaaaaaaa/00001.wav",
                                                                        "id10270/b-b_bbbbbbb/00002.wav")
    assert len(splits["test"]) == 7  # distinct utterances of the 4 trials
    task = SpeakerVerification({"hidden_dim": 8, "agg_dim": 12, "crop_seconds": 8.0})
    task.prepare(root)
    assert "dropped 3 training files of 2 s or less" in capsys.readouterr().err
    assert task.data_notes["train_files_dropped_short"] == 3


def test_asv_trial_list_errors(tmp_path):
    bad = tmp_path / "t.txt"
    bad.write_text("1 id1/v/00001.wav id2/v/00001.wav\n2 id1/v/00001.wav id2/v/00002.wav\n")
    with pytest.raises(ValueError, match=r"t.txt:2: expected"):
        read_trials(bad)
    bad.write_text("1 id1/v/00001.wav id1/w/00001.wav\n")
    with pytest.raises(ValueError, match="both target"):
        read_trials(bad)
    root = write_voxceleb1(tmp_path / "vox")
    (root / "veri_test.txt").write_text("1 id10270/aaaaaaaaaaa/00001.wav id10270/zzzzzzzzzzz/00001.wav\n"
                                         "0 id10270/aaaaaaaaaaa/00001.wav id10271/aaaaaaaaaaa/00001.wav\n")
    with pytest.raises(FileNotFoundError, match="id10270/zzzzzzzzzzz/00001.wav not found"):
        voxceleb1_verification(root)


def test_am_softmax_matches_its_formula():
    torch.manual_seed(0)
    x, w = torch.randn(5, 8), torch.randn(4, 8)
    y = torch.tensor([0, 3, 1, 1, 2])
    cos = F.normalize(x, dim=1) @ F.normalize(w, dim=1).t()
    expected = []
    for i in range(5):
        num = 30 * (cos[i, y[i]] - 0.4)
        others = torch.cat([cos[i, : y[i]], cos[i, y[i] + 1:]])
        expected.append(-(num - torch.log(torch.exp(num) + torch.exp(30 * others).sum())))
    assert am_softmax_loss(x, w, y, 30.0, 0.4).item() == pytest.approx(torch.stack(expected).mean().item(), rel=1e-5)


def test_xvector_head_masks_padding():
    torch.manual_seed(0)
    head = XVectorHead(6, 8, 12, num_speakers=3).eval()
    assert TDNN_SHRINK == 14
    a, b = torch.randn(1, 40, 6), torch.randn(1, 25, 6)
    batch = torch.zeros(2, 40, 6)
    batch[0], batch[1, :25] = a[0], b[0]
    emb = head.embed(batch, torch.tensor([40, 25]))
    assert emb.shape == (2, 8) and torch.allclose(emb.norm(dim=-1), torch.ones(2))
    assert torch.allclose(emb[0], head.embed(a, torch.tensor([40]))[0], atol=1e-5)
    assert torch.allclose(emb[1], head.embed(b, torch.tensor([25]))[0], atol=1e-5)
    # shorter than the receptive field: padded to one valid frame, still finite
    assert torch.isfinite(head.embed(torch.randn(1, 5, 6), torch.tensor([5]))).all()
    assert head(batch, torch.tensor([40, 25])).shape == (2, 8)


# -- ER ------------------------------------------------------------------------------------------
def test_iemocap_labels_merge_drop_and_folds(tmp_path, capsys):
    root = write_iemocap(tmp_path / "IEMOCAP_full_release")
    by_session, dropped = iemocap_manifest(root)
    assert dropped == {"fru": 5, "xxx": 5}
    s1 = by_session["1"]
    assert [(e.id, e.label) for e in s1[:4]] == [("Ses01F_impro01_F000", "neu"), ("Ses01F_impro01_M000", "hap"),
                                                 ("Ses01F_impro01_F001", "hap"), ("Ses01F_impro01_M001", "ang")]
    assert len(s1) == 6 and s1[0].audio.num_samples == SR // 2
    splits = fold_splits(by_session, "2")
    assert all(e.id.startswith("Ses02") for e in splits["test"]) and len(splits["test"]) == 6
    pool = splits["train"] + splits["dev"]
    assert len(pool) == 24 and len(splits["train"]) == int(0.8 * 24) and not any(e.id.startswith("Ses02") for e in pool)
    assert fold_splits(by_session, "2") == splits  # deterministic
    task = EmotionRecognition({"fold": 3, "projector_dim": 8})
    task.prepare(root)
    assert task.data_notes["utterances_dropped_by_label"] == {"fru": 5, "xxx": 5}
    assert task.data_notes["utterances_kept"] == {"neu": 10, "hap": 10, "ang": 5, "sad": 5}
    assert "dropped 10 with other labels" in capsys.readouterr().err
    with pytest.raises(ValueError, match="'all' runs every fold"):
        EmotionRecognition({"fold": "all"}).prepare(root)


def test_iemocap_errors_name_the_file(tmp_path):
    root = write_iemocap(tmp_path / "iemocap")
    emo = root / "Session4" / "dialog" / "EmoEvaluation" / "Ses04F_impro01.txt"
    emo.write_text(emo.read_text().replace("\tsad\t", "\tbored\t"))
    with pytest.raises(ValueError, match=r"Ses04F_impro01.txt:\d+: unknown emotion label 'bored'"):
        iemocap_manifest(root)
    emo.write_text(emo.read_text().replace("\tbored\t", "\tsad\t"))
    (root / "Session4" / "sentences" / "wav" / "Ses04F_impro01" / "Ses04F_impro01_M000.wav").unlink()
    with pytest.raises(FileNotFoundError, match="audio of Ses04F_impro01_M000 not found"):
        iemocap_manifest(root)


# -- IC ------------------------------------------------------------------------------------------
def test_fluent_commands_layout_and_slots(tmp_path):
    root = write_fsc(tmp_path / "fluent_speech_commands_dataset")
    splits = fluent_commands_manifest(root)
    assert {k: len(v) for k, v in splits.items()} == {"train": 4, "dev": 1, "test": 2}
    assert splits["test"][0].id == "0005-4474-11e9" and splits["test"][0].label == ("increase", "heat", "kitchen")
    task = IntentClassification({"projector_dim": 8})
    task.prepare(root)
    assert task.values == (("activate", "bring", "change language", "increase"),
                           ("heat", "lights", "newspaper", "none"), ("kitchen", "none"))
    torch.manual_seed(0)
    head = task.build_head(4, 160)
    feats, lengths = torch.randn(2, 7, 4), torch.tensor([7, 5])
    exs = splits["test"]
    logits = head(feats, lengths)
    expected = (F.cross_entropy(logits[:, :4], torch.tensor([3, 2])) + F.cross_entropy(logits[:, 4:8], torch.tensor([0, 3]))
                + F.cross_entropy(logits[:, 8:], torch.tensor([0, 1])))
    assert task.loss(head, feats, lengths, exs).item() == pytest.approx(expected.item(), rel=1e-6)
    preds = task.predict(head, feats, lengths, exs)
    assert preds[0] == (task.values[0][int(logits[0, :4].argmax())], task.values[1][int(logits[0, 4:8].argmax())],
                        task.values[2][int(logits[0, 8:].argmax())])
    # exact match of all three slots
    assert task.score(exs, [("increase", "heat", "kitchen"), ("change language", "none", "kitchen")]) == {"accuracy": 50.0}
    out = task.write_predictions(tmp_path / "pred", "test", exs, [("increase", "heat", "kitchen")] * 2)
    assert out[0].read_text().splitlines()[0] == "0005-4474-11e9,increase,heat,kitchen"


def test_fluent_commands_errors(tmp_path):
    rows = dict(FSC_ROWS, valid=[("spkC", "Bring my socks", "bring", "socks", "none")])
    root = write_fsc(tmp_path / "fsc", rows)
    with pytest.raises(ValueError, match=r"valid_data.csv: .* has object 'socks', which no training row has"):
        IntentClassification({}).prepare(root)
    root = write_fsc(tmp_path / "fsc2")
    text = (root / "data" / "test_data.csv").read_text().replace(",location", ",place")
    (root / "data" / "test_data.csv").write_text(text)
    with pytest.raises(ValueError, match="test_data.csv: missing column"):
        fluent_commands_manifest(root)
    root = write_fsc(tmp_path / "fsc3")
    sorted((root / "wavs" / "speakers" / "spkD").glob("*.wav"))[0].unlink()
    with pytest.raises(FileNotFoundError, match=r"test_data.csv:2: audio file wavs/speakers/spkD/"):
        fluent_commands_manifest(root)


# -- registry, recipes, runner ------------------------------------------------------------------
@pytest.mark.parametrize("name,metric,up", [("sid", "accuracy", True), ("asv", "eer", False),
                                            ("er", "accuracy", True), ("ic", "accuracy", True)])
def test_registered_with_recipes(name, metric, up):
    cls = get_task(name)
    assert cls.primary_metric == metric and cls.metrics[metric].higher_is_better is up and cls.category
    for mini in (False, True):
        cfg = resolve_config(name, use_mini=mini)
        assert cfg["task"]["name"] == name
    assert get_task("er").folds == ("1", "2", "3", "4", "5") and resolve_config("er", False)["task"]["fold"] == "all"


def _cfg(task, data, **sets):
    base = {"runner.total_steps": 2, "runner.eval_every": 2, "runner.save_every": 2, "runner.log_every": 1,
            "optimizer.lr": 1e-3}
    base.update(sets)
    cfg = resolve_config(task, use_mini=False, sets=[f"{k}={v}" for k, v in base.items()])
    cfg.update({"upstream": {"name": "fbank", "ckpt": None, "random_init": False, "options": {}},
                "data": {"dir": str(data)}, "device": "cpu"})
    return cfg


def test_asv_run_writes_scores_and_counts(tmp_path):
    data = write_voxceleb1(tmp_path / "vox")
    res = Runner(_cfg("asv", data, **{"task.hidden_dim": 8, "task.agg_dim": 16, "task.crop_seconds": 2.0}),
                 tmp_path / "run", progress=False).run()
    assert set(res["metrics"]["test"]) == {"eer", "min_dcf"} and res["metrics"]["dev"] == res["metrics"]["test"]
    assert res["data"]["notes"]["train_files_dropped_short"] == 3
    lines = (tmp_path / "run" / "predictions" / "test" / "predict.txt").read_text().splitlines()
    assert len(lines) == 4 and lines[0].startswith("id10270-aaaaaaaaaaa-00001_id10270-b-b_bbbbbbb-00002 ")
    scores = [float(line.split()[1]) for line in lines]
    labels = [1, 0, 1, 0]
    assert res["metrics"]["test"]["eer"] == pytest.approx(_sklearn_eer(labels, scores), abs=1e-3)


def test_er_all_folds_are_run_and_averaged(tmp_path):
    data = write_iemocap(tmp_path / "iemocap")
    res = run_benchmark(_cfg("er", data, **{"batch.max_seconds": 4.0}), tmp_path / "er", progress=False)
    assert sorted(res["folds"]) == ["1", "2", "3", "4", "5"]
    mean = np.mean([f["metrics"]["test"]["accuracy"] for f in res["folds"].values()])
    assert res["metrics"]["test"]["accuracy"] == pytest.approx(mean)
    pred = (tmp_path / "er" / "fold4" / "predictions" / "test" / "predict.txt").read_text().splitlines()
    assert [line.split()[0] for line in pred] == sorted(f"Ses04F_impro01_{s}" for s in
                                                        ("F000", "M000", "F001", "M001", "F002", "M003"))
    assert json.loads((tmp_path / "er" / "fold4" / "results.json").read_text())["data"]["notes"]["test_session"] == "Session4"


# -- mini-corpus splits parsed by the real loaders ------------------------------------------------
MY_SPLITS = ("voxceleb1", "iemocap", "fluent_commands")


@pytest.fixture(scope="module")
def mini_built(tmp_path_factory):
    from superb.downstream.mini import ensure_split

    cache = tmp_path_factory.mktemp("mini-h2")
    return {s: ensure_split(s, "tiny", cache_dir=cache, progress=False) for s in MY_SPLITS}


def test_mini_splits_parse_with_the_real_loaders(mini_built):
    vox = mini_built["voxceleb1"]
    sid = voxceleb1_identification(vox)
    assert {e.label for e in sid["test"]} == {e.label for e in sid["train"]}
    assert not {e.id for e in sid["train"]} & {e.id for e in sid["test"] + sid["dev"]}
    splits, trials, notes = voxceleb1_verification(vox, "veri_test2.txt")  # the mini corpus names its list so
    t = trials["test"]
    assert sum(x[0] for x in t) == len(t) // 2 and notes["trial_speakers_also_in_training"] == 0
    assert all(a.split("/")[1] != b.split("/")[1] for lab, a, b in t if lab == 1)  # targets across videos
    assert notes["train_files_dropped_short"] + notes["train_files_kept"] == 4 * 3 * 2
    by_session, dropped = iemocap_manifest(mini_built["iemocap"])
    assert sorted(by_session) == ["1", "2", "3", "4", "5"] and all(by_session.values())
    assert sum(len(v) for v in by_session.values()) + sum(dropped.values()) == 5 * 2 * 6
    task = IntentClassification({})
    ic = task.prepare(mini_built["fluent_commands"])
    assert len(task.values[0]) == 6 and len(task.values[1]) == 14 and len({e.label for e in ic["train"]}) == 31
    spk = {s: {Path(e.audio.path).parent.name for e in ic[s]} for s in ic}
    assert not spk["train"] & spk["test"] and not spk["train"] & spk["dev"]


def test_mini_splits_are_deterministic(mini_built, tmp_path):
    import hashlib

    from superb.downstream.mini import ensure_split

    def hashes(d):
        return {p.relative_to(d).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(Path(d).rglob("*")) if p.is_file()}

    for split in ("voxceleb1", "iemocap"):
        again = ensure_split(split, "tiny", cache_dir=tmp_path, progress=False)
        assert hashes(again) == hashes(mini_built[split]), split

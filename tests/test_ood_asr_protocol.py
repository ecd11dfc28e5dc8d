"""OOD-ASR follows s3prl v0.4.18's downstream/ctc protocol (cv_config/cv_{es,zh,ar}.yaml, sbcsae.yaml,
corpus/common_voice_preprocess.py, vectominist/SBCSAE-preprocess): recipe, head, text filters, the
SBCSAE split in its real layouts, and the SUPERB-SG average."""
import numpy as np
import pytest
import soundfile as sf
import torch

from superb.benchmark.config import resolve_config
from superb.downstream.tasks import get_task

SR = 16000
CV_HEADER = "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccent\tlocale\tsegment\n"


def task(**sets):
    cfg = resolve_config("ood_asr", use_mini=False, sets=[f"{k}={v}" for k, v in sets.items()])
    return get_task("ood_asr")(cfg["task"])


def wav(path, seconds, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    a = (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)
    sf.write(path, a, SR, subtype="PCM_16")
    return path


# -- 1. recipe and head ---------------------------------------------------------------------------
def test_recipe_follows_s3prl_cv_config():
    cfg = resolve_config("ood_asr", use_mini=False, sets=[])
    assert cfg["runner"]["total_steps"] == 500_000 and cfg["optimizer"]["lr"] == 1e-4
    assert cfg["runner"]["grad_clip"] == 1.0
    assert cfg["batch"]["max_seconds"] == 80.0          # 16 clips x ~5 s
    t = cfg["task"]
    assert (t["projector_dim"], t["rnn_dim"], t["rnn_layers"], t["dropout"]) == (1024, 1024, 2, 0.2)
    assert t["total_rate"] == 320 and t["proj"] is True
    assert t["accents"] == {"es": ["mexicano"]}
    mini = resolve_config("ood_asr", use_mini=True, sets=[])
    assert mini["task"]["accents"] == {"es": None}      # the mini tables have no accent values


def _head(upstream_rate, dim=6, hidden=5, vocab=("<blank>", "|", "A", "B")):
    from superb.downstream.tasks.ood_asr import OODCTCHead

    torch.manual_seed(0)
    return OODCTCHead(list(vocab), dim, len(vocab), 7, hidden, 2, 0.2, None, upstream_rate=upstream_rate).eval()


def _reference(head, x):
    """s3prl RNNs for one utterance: projector, x[::step], per layer LSTM -> (dropout) -> tanh(Linear)."""
    n = x.shape[0]
    y = head.projector(x)[None]
    step = head.frame_step
    y = y[:, ::step][:, : max(1, n // step)]
    for rnn, pj in zip(head.rnns, head.layer_proj):
        y = torch.tanh(pj(rnn(y)[0]))
    return head.output(y).log_softmax(-1)[0]


def test_head_drops_10ms_frames_to_20ms_and_projects_after_each_layer():
    head = _head(160)
    assert head.frame_step == 2
    assert [tuple(p.weight.shape) for p in head.layer_proj] == [(10, 10), (10, 10)]
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in head.modules())
    torch.manual_seed(1)
    lengths = torch.tensor([9, 6, 1])
    feats = torch.randn(3, 9, 6)
    with torch.no_grad():
        out = head(feats, lengths)
        out_len = head.output_lengths(lengths)
        assert out_len.tolist() == [4, 3, 1] and out.shape[1] == 5
        for b, n in enumerate(lengths.tolist()):
            ref = _reference(head, feats[b, :n])
            torch.testing.assert_close(out[b, : out_len[b]], ref, atol=1e-5, rtol=1e-5)
    assert _head(320).frame_step == 1 and _head(640).frame_step == 1   # round(320/640) = 0: no drop


def test_task_builds_the_ood_head_for_the_upstream_rate(tmp_path):
    t = task()
    t.vocab = ["<blank>", "|", "A"]
    h = t.build_head(8, 160)
    assert type(h).__name__ == "OODCTCHead" and h.frame_step == 2 and h.layer_proj is not None
    torch.manual_seed(0)
    h.eval()
    feats, lengths = torch.randn(2, 11, 8), torch.tensor([11, 7])
    ex = [type("E", (), {"label": "A A", "id": "x"})(), type("E", (), {"label": "A", "id": "y"})()]
    with torch.no_grad():
        assert torch.isfinite(t.loss(h, feats, lengths, ex))
        assert len(t.predict(h, feats, lengths, ex)) == 2


# -- 2. text --------------------------------------------------------------------------------------
def test_normalisation_upper_case_keeps_apostrophes():
    from superb.downstream.tasks.ood_asr import normalize_transcript as N

    assert N("¿Qué tal, Ana’s «amigo»?", False) == "QUÉ TAL ANA'S AMIGO"
    assert N("l'été — ﬁn!", False) == "L'ÉTÉ FIN"            # NFKC ligature, dash -> space
    assert N("我喜欢，苹果。", True, True, "zh-CN") == "我喜欢苹果"
    assert N("我喜欢iPhone。", True, True, "zh-CN") == ""       # Latin letters: dropped
    assert N("ＯＫ好的", True, True, "zh-CN") == ""              # full-width Latin after NFKC
    assert N("مرحبا بك", False, True, "ar") == "مرحبا بك"
    assert N("مرحبا OK", False, True, "ar") == ""
    assert N("hola ら amigo", False, False, "es") == ""          # s3prl's Spanish exception characters
    assert N("我 ㄧ", True, False, "zh-CN") == "我一"


def _cv(root, lang, rows):
    d = root / lang
    for split in ("train", "dev", "test"):
        lines = []
        for k, (text, accent) in enumerate(rows[split]):
            name = f"common_voice_{lang}_{split}{k}.wav"
            wav(d / "clips" / name, 0.3, seed=k)
            lines.append(f"c\t{name}\t{text}\t2\t0\t\t\t{accent}\t{lang}\t\n")
        (d / f"{split}.tsv").write_text(CV_HEADER + "".join(lines), encoding="utf-8")
    return root


def test_spanish_keeps_only_mexicano_and_mandarin_drops_latin(tmp_path):
    root = _cv(tmp_path, "es", {"train": [("Hola, amigo.", "mexicano"), ("Vale tío.", "centrosurpeninsular"),
                                          ("¿Qué tal?", "mexicano"), ("Sin acento.", "")],
                                "dev": [("Dos.", "mexicano")], "test": [("Tres.", "mexicano"), ("No.", "andino")]})
    es = task()
    splits = es.prepare(root)
    assert [e.label for e in splits["train"]] == ["HOLA AMIGO", "QUÉ TAL"]
    assert [e.id for e in splits["test"]] == ["common_voice_es_test0"]
    assert es.data_notes["filtered"]["train"] == {"accent": 2}
    _cv(tmp_path, "zh-CN", {"train": [("我喜欢苹果。", ""), ("我用iPhone。", ""), ("今天很好！", "")],
                            "dev": [("你好？", "")], "test": [("我很好。", "")]})
    zh = task(**{"task.language": "zh-CN"})
    splits = zh.prepare(tmp_path)
    assert [e.label for e in splits["train"]] == ["我喜欢苹果", "今天很好"]
    assert zh.data_notes["filtered"]["train"] == {"script": 1} and zh.primary_metric == "cer"


# -- 3. SBCSAE ------------------------------------------------------------------------------------
TRN_001 = (
    "0.00 2.50\tLENORE:\t... So you don't need to go,\n"        # 3 fields: kept
    "2.50 3.10\t\tto ... do the feet?\n"                        # continuation line, empty speaker: kept
    "3.10 4.00\tLARRY:\t[I mean] yeah\n"                        # overlap brackets: dropped
    "4.00 4.05\tLARRY:\tum\n"                                   # shorter than 0.1 s: dropped
    "4.10 20.00\tLARRY:\tway too long\n"                        # longer than 15 s: dropped
    "5.00 6.00\tLENORE:\t(H) we=ll (laughing) okay\n"           # (...) removed, '=' deleted
    "6.00 7.00\tLENORE:\tX went there\n"                        # leading "X " passes the X filter
    "7.00 8.00\tLARRY:\tI saw X there\n"                        # " X ": unintelligible, dropped
    "8.00 9.00\tLARRY:\t<X maybe X>\n"                          # uncertain hearing: dropped
    "9.00 9.80 DORIS:\tthe cat's @@ here\n"                     # 2 fields: times + speaker in field 1
    "9.50 10.50\tLENORE:\toverlaps the previous one\n"          # overlaps 9.00-9.80: both removed
    "11.00\t12.00\tLENORE:\tfour fields % here\n"              # 4 fields
    "12.00 13.00\tLENORE:\ta\n"                                 # one character: dropped
    "13.00 14.00\tLENORE:\tcafé\n"                             # outside A-Z: dropped
)


def write_sbcsae_raw(root, ext=".wav"):
    (root / "trn").mkdir(parents=True)
    for i in range(1, 61):
        (root / "trn" / f"SBC{i:03d}.trn").write_text("", encoding="utf-8")
    (root / "trn" / "SBC001.trn").write_text(TRN_001, encoding="utf-8")
    (root / "trn" / "SBC002.trn").write_text("0.50 1.50\tA:\tsecond recording\n", encoding="utf-8")
    (root / "trn" / "SBC047.trn").write_text("0.00 1.00\tB:\tdev line\n", encoding="utf-8")
    (root / "trn" / "SBC060.trn").write_text("1.00 2.00\tC:\ttest line\n", encoding="utf-8")
    for i, seconds in ((1, 14.5), (2, 2.0), (47, 1.5), (60, 1.8)):
        wav(root / "mp3" / f"{i:02d}{ext}", seconds, seed=i)
    return root


def test_sbcsae_trn_rules():
    from superb.downstream.corpora import sbcsae as S

    assert S.SPLIT_RECORDINGS["train"] == range(1, 47) and S.SPLIT_RECORDINGS["dev"] == range(47, 54) \
        and S.SPLIT_RECORDINGS["test"] == range(54, 61)
    assert S.normalize_sentence("(H) we=ll (laughing) okay") == "WELL OKAY"
    assert S.normalize_sentence("so -- right?") == "SO RIGHT"
    assert S.normalize_sentence("it's “fine”") == ""           # curly quotes are outside the vocabulary
    assert S.normalize_sentence("he said (laughing") == ""
    assert S.Segment("SBC009", 0.29, 13.16, "X").id == "SBC009_000028-001316"   # int(0.29 * 100) = 28
    assert S.Segment("SBC001", 1.0, 2.0, "X").sample_range() == (16000, 32001)


def test_sbcsae_raw_layout(tmp_path):
    root = write_sbcsae_raw(tmp_path / "SBCSAE")
    t = task(**{"task.language": "sbcsae", "task.audio_ext": ".wav"})
    splits = t.prepare(root)
    train = {e.id: e for e in splits["train"]}
    assert [(i, e.label) for i, e in train.items()] == [
        ("SBC001_000000-000250", "SO YOU DON'T NEED TO GO"),
        ("SBC001_000250-000310", "TO DO THE FEET"),
        ("SBC001_000500-000600", "WELL OKAY"),
        ("SBC001_000600-000700", "X WENT THERE"),
        ("SBC001_001100-001200", "FOUR FIELDS HERE"),
        ("SBC002_000050-000150", "SECOND RECORDING"),
    ]
    e = train["SBC001_000250-000310"]
    assert e.audio.path.endswith("mp3/01.wav") and (e.audio.start, e.audio.num_samples) == (40000, 9601)
    assert [e.id for e in splits["dev"]] == ["SBC047_000000-000100"]
    assert [e.label for e in splits["test"]] == ["TEST LINE"]
    assert t.primary_metric == "wer" and "'" in t.vocab and "A" in t.vocab
    from superb.downstream.audio import load_audio

    assert len(load_audio(splits["test"][0].audio)) == int(1.8 * SR) - SR   # 1-2 s cut at the 1.8 s end


def test_sbcsae_segmented_layout_of_s3prl(tmp_path):
    root = tmp_path / "sbcsae"
    rows = {"train": [("SBC009_000000-001316.wav", "AM I DOING THAT RIGHT SO FAR"),
                      ("SBC042_081976-083246.wav", "WELL I GUESS THAT NOTE")],
            "dev": [("SBC050_000100-000200.wav", "OKAY")], "test": [("SBC055_000100-000300.wav", "YEAH RIGHT")]}
    for split, items in rows.items():
        for k, (name, _) in enumerate(items):
            wav(root / "wav" / name, 0.5 + 0.1 * k, seed=k)
        (root / f"{split}.tsv").write_text("path\tsentence\n" + "".join(f"{n}\t{s}\n" for n, s in items),
                                           encoding="utf-8")
    t = task(**{"task.language": "sbcsae"})
    splits = t.prepare(root)
    assert [e.id for e in splits["train"]] == ["SBC009_000000-001316", "SBC042_081976-083246"]
    assert splits["test"][0].label == "YEAH RIGHT" and splits["dev"][0].audio.num_samples == 8000
    with pytest.raises(FileNotFoundError, match="SBCSAE not found"):
        task(**{"task.language": "sbcsae"}).prepare(tmp_path / "nothing")


# -- 4. SUPERB-SG average -------------------------------------------------------------------------
def test_superb_sg_average_uses_wer_for_es_ar_sbcsae_and_cer_for_mandarin():
    from superb.downstream.tasks.ood_asr import superb_sg_ood_asr_average as avg

    assert avg({"es": 10.0, "zh-CN": 20.0, "ar": 30.0, "sbcsae": 40.0}) == pytest.approx(25.0)
    runs = {"es": {"wer": 12.0, "cer": 4.0}, "zh": {"wer": 99.0, "cer": 16.0},
            "ar": {"wer": 40.0, "cer": 15.0}, "spon": {"wer": 28.0, "cer": 14.0}}
    assert avg(runs) == pytest.approx((12.0 + 16.0 + 40.0 + 28.0) / 4)
    with pytest.raises(ValueError, match="missing: sbcsae"):
        avg({"es": 1, "zh-CN": 2, "ar": 3})
    with pytest.raises(ValueError, match="scored by CER"):
        avg({"es": 1, "zh-CN": {"wer": 2}, "ar": 3, "sbcsae": 4})
    with pytest.raises(ValueError, match="unknown OOD-ASR part"):
        avg({"es": 1, "zh-CN": 2, "ar": 3, "sbcsae": 4, "fr": 5})

"""SF: Audio SNIPS loader, slot-token targets, a short run (slot metrics: tests/test_metrics_slots.py)."""
import numpy as np
import pytest
import soundfile as sf

from superb.benchmark.config import resolve_config
from superb.benchmark.runner import Runner
from superb.downstream.corpora.audio_snips import parse_iob_line, snips_manifest, tagged_sequence
from superb.downstream.tasks.sf import SlotFilling

SPEAKERS = {"train": ["Ivy", "Joey"], "dev": ["Amy"], "test": ["Brian"]}
LINES = {
    "train": ["BOS play john legend on spotify EOS\tO O artist artist O service PlayMusic",
              "BOS what's the weather in paris ? EOS\tO O O O O city O GetWeather",
              "BOS play r&b EOS\tO O genre PlayMusic"],
    "valid": ["BOS book a table in café rouge EOS\tO O O O O restaurant_name restaurant_name BookRestaurant"],
    "test": ["BOS rate the hobbit five stars EOS\tO O object_name object_name rating_value O RateBook"],
}


def _wav(path, seconds=0.5, freq=300.0):
    t = np.arange(int(seconds * 16000)) / 16000
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 16000, subtype="PCM_16")


@pytest.fixture
def snips(tmp_path):
    root = tmp_path / "corpus" / "SNIPS"
    lines = []
    for folder, texts in LINES.items():
        speakers = {"train": SPEAKERS["train"], "valid": SPEAKERS["dev"], "test": SPEAKERS["test"]}[folder]
        for n, text in enumerate(texts):
            for k, spk in enumerate(speakers + ["Salli"]):  # Salli: in no protocol list here
                uid = f"{spk}-snips-{folder}-{n}"
                lines.append(f"{uid} {text}")
                _wav(root / folder / f"{uid}.wav", 0.4 + 0.1 * n, 200 + 50 * k)
    (root / "all.iob.snips.txt").write_text("\n".join(lines) + "\n")
    return root


def test_iob_lines_are_normalised_and_tagged():
    uid, words, tags, intent = parse_iob_line(
        "Ivy-snips-train-1 BOS what's the weather in paris ? EOS\tO O O O O city O GetWeather", "x")
    assert (uid, intent) == ("Ivy-snips-train-1", "GetWeather")
    assert words == ["WHAT'S", "THE", "WEATHER", "IN", "PARIS"] and tags == ["O", "O", "O", "O", "city"]
    _, words, tags, _ = parse_iob_line("u BOS play r&b EOS\tO O genre PlayMusic", "x")
    assert words == ["PLAY", "R", "AND", "B"] and tags == ["O", "genre", "genre", "genre"]
    _, words, _, _ = parse_iob_line("u BOS café EOS\tO restaurant_name X", "x")
    assert words == ["CAFE"]
    assert tagged_sequence(["PLAY", "JOHN", "LEGEND", "ON", "SPOTIFY"], ["O", "artist", "artist", "O", "service"]) \
        == "PLAY B-artist JOHN LEGEND E-artist ON B-service SPOTIFY E-service"
    with pytest.raises(ValueError, match=r"f.txt:7: 2 words but 3 tag fields"):
        parse_iob_line("u BOS a b EOS\tO x y", "f.txt:7")
    with pytest.raises(ValueError, match="no tab"):
        parse_iob_line("u BOS a b EOS O x y z", "f.txt:1")
    with pytest.raises(ValueError, match=r"characters outside A-Z.*'9'"):
        parse_iob_line("u BOS track 9 EOS\tO O O X", "f.txt:2")


def test_snips_layout_and_protocol_speakers(snips):
    splits, slots = snips_manifest(snips, SPEAKERS)
    assert sorted(e.id for e in splits["train"]) == sorted(f"{s}-snips-train-{n}" for s in ("Ivy", "Joey") for n in range(3))
    assert [e.id for e in splits["dev"]] == ["Amy-snips-valid-0"]  # Salli's file is outside the protocol
    assert slots == ["artist", "city", "genre", "object_name", "rating_value", "restaurant_name", "service"]
    ex = {e.id: e.label for e in splits["train"]}
    assert ex["Ivy-snips-train-0"] == "PLAY B-artist JOHN LEGEND E-artist ON B-service SPOTIFY E-service"
    task = SlotFilling({"train_speakers": SPEAKERS["train"], "valid_speakers": SPEAKERS["dev"],
                        "test_speakers": SPEAKERS["test"]})
    task.prepare(snips.parent)  # the folder holding SNIPS/ works too
    assert len(task.vocab) == 29 + 2 * len(slots)
    ids = task.encode(ex["Ivy-snips-train-0"], "x")
    assert task.decode(ids) == ex["Ivy-snips-train-0"]
    call = task.encode("CALL B-city PARIS E-city", "x")
    assert task.decode([t for i in call for t in (i, i, 0)]) == "CALL B-city PARIS E-city"
    assert task.decode([i for i in call for _ in range(2)]) == "CAL B-city PARIS E-city"  # CTC merges repeats


def test_snips_errors_name_the_file(snips):
    with pytest.raises(ValueError, match=r"no audio for the test speakers \['Emma'\]"):
        snips_manifest(snips, {**SPEAKERS, "test": ["Brian", "Emma"]})
    _wav(snips / "train" / "Ivy-snips-train-99.wav")
    with pytest.raises(ValueError, match=r"Ivy-snips-train-99.wav: no line for 'Ivy-snips-train-99'"):
        snips_manifest(snips, SPEAKERS)


def test_short_run_and_predictions(snips, tmp_path):
    sets = {"runner.total_steps": 3, "runner.eval_every": 3, "runner.save_every": 3, "runner.log_every": 1,
            "task.projector_dim": 16, "task.rnn_dim": 16, "batch.max_seconds": 3.0,
            "task.train_speakers": "[Ivy, Joey]", "task.valid_speakers": "[Amy]", "task.test_speakers": "[Brian]"}
    cfg = resolve_config("sf", use_mini=False, sets=[f"{k}={v}" for k, v in sets.items()])
    cfg.update({"upstream": {"name": "fbank", "ckpt": None, "random_init": False, "options": {}},
                "data": {"dir": str(snips)}, "device": "cpu"})
    res = Runner(cfg, tmp_path / "run", progress=False).run()
    assert set(res["metrics"]["test"]) == {"slot_type_f1", "slot_value_cer", "wer", "cer"}
    lines = (tmp_path / "run" / "predictions" / "test" / "predict.ark").read_text().splitlines()
    assert [ln.split()[0] for ln in lines] == ["Brian-snips-test-0"]


def test_mini_snips_split_parses():
    from superb.recipes import load_recipe
    from superb.downstream.mini import ensure_split

    data = ensure_split("snips", profile="tiny", progress=False)
    recipe = load_recipe("sf")["task"]
    task = SlotFilling(recipe)
    splits = task.prepare(data)
    assert {k: len(v) for k, v in splits.items()} == {"train": 24, "dev": 8, "test": 8}
    assert all("B-" in e.label for e in splits["train"])


def test_bilstm_equals_a_packed_bidirectional_lstm():
    import torch
    from torch import nn

    from superb.downstream.tasks.sf import BiLSTM

    torch.manual_seed(0)
    ours, ref = BiLSTM(6, 5), nn.LSTM(6, 5, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(ours.fwd, f"{name}_l0").copy_(getattr(ref, f"{name}_l0"))
            getattr(ours.bwd, f"{name}_l0").copy_(getattr(ref, f"{name}_l0_reverse"))
    x = torch.randn(3, 9, 6)
    lengths = torch.tensor([9, 4, 7])
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    expect, _ = nn.utils.rnn.pad_packed_sequence(ref(packed)[0], batch_first=True, total_length=9)
    got = ours(x, lengths)
    for b, n in enumerate(lengths.tolist()):
        assert torch.allclose(got[b, :n], expect[b, :n], atol=1e-6)

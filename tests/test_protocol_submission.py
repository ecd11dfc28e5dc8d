"""Protocol fidelity II: s3prl's ASV trial list and ASR batch, and the ids / files the
leaderboard server reads (KS ids, SE/SS metric lines)."""
from __future__ import annotations

from importlib import resources

import pytest

from superb.benchmark.config import resolve_config
from superb.benchmark.export import collect
from superb.benchmark.submit import SubmitError, plan_submission
from superb.downstream.tasks import Example
from superb.downstream.tasks.asv import SpeakerVerification
from superb.downstream.tasks.ks import KeywordSpotting, prediction_id

from results_fixtures import write_run
from test_tasks_sid_asv_er_ic import write_voxceleb1


def recipe_text(task: str) -> str:
    return (resources.files("superb.recipes") / f"{task}.yaml").read_text(encoding="utf-8")


def test_asv_defaults_to_the_original_vox1_o_list(tmp_path):
    """s3prl's voxceleb1_test_v2.txt is veri_test.txt (37,720 trials), not the cleaned veri_test2.txt."""
    assert resolve_config("asv", use_mini=False)["task"]["trials"] == "veri_test.txt"
    assert resolve_config("asv", use_mini=True)["task"]["trials"] == "veri_test2.txt"  # the mini corpus's file
    header = recipe_text("asv")
    assert "37,720" in header and "18,860" in header
    root = write_voxceleb1(tmp_path / "vox")  # writes veri_test.txt
    task = SpeakerVerification({"min_train_seconds": 2.0})
    splits = task.prepare(root)
    assert task.data_notes["test_trials"] == str(root / "veri_test.txt") and len(task.trials["test"]) == 4
    assert len(splits["test"]) == 7
    (root / "veri_test.txt").rename(root / "veri_test2.txt")
    with pytest.raises((FileNotFoundError, ValueError), match="veri_test.txt"):
        SpeakerVerification({}).prepare(root)
    cleaned = SpeakerVerification({"trials": "veri_test2.txt"})  # the cleaned list stays selectable
    cleaned.prepare(root)
    assert cleaned.data_notes["test_trials"] == str(root / "veri_test2.txt")


def test_asr_batch_is_s3prls_effective_sixteen_utterances():
    cfg = resolve_config("asr", use_mini=False)
    assert cfg["batch"]["max_seconds"] == pytest.approx(200.0)
    header = recipe_text("asr")
    assert "HALF_BATCHSIZE_TIME = 2000" in header and "16 utterances" in header


def test_ks_predictions_carry_the_server_ids(tmp_path):
    assert prediction_id("yes/0a2b400e_nohash_0.wav") == "yes-0a2b400e_nohash_0.wav"
    assert prediction_id("_unknown_/bed-0a2b400e_nohash_0.wav") == "_unknown_-bed-0a2b400e_nohash_0.wav"
    task = KeywordSpotting({})
    examples = [Example("yes/b_nohash_0.wav", None, "yes"), Example("_silence_/a_nohash_1.wav", None, "_silence_")]
    (path,) = task.write_predictions(tmp_path, "test", examples, ["no", "_silence_"])
    assert path.read_text() == "_silence_-a_nohash_1.wav _silence_\nyes-b_nohash_0.wav no\n"
    with pytest.raises(ValueError, match="share the prediction id 'yes-a.wav'"):
        task.write_predictions(tmp_path, "dev", [Example("x/yes/a.wav", None, "yes"),
                                                 Example("y/yes/a.wav", None, "yes")], ["yes", "no"])
    # older runs wrote <label>/<file>.wav: submit converts them; ids of no file form are refused
    write_run(tmp_path / "old", "ks", "ks", {"accuracy": 90.0}, files={"predict.txt": "yes/b_nohash_0.wav no\n"})
    assert plan_submission(collect([tmp_path / "old"])).files == {"predict/ks_public/predict.txt":
                                                                  b"yes-b_nohash_0.wav no\n"}
    write_run(tmp_path / "bad", "ks", "ks", {"accuracy": 90.0}, files={"predict.txt": "b_nohash_0 no\n"})
    with pytest.raises(SubmitError, match=r"predict.txt:1: KS id 'b_nohash_0' is not of the form <label>-<file>.wav"):
        plan_submission(collect([tmp_path / "bad"]))


def test_se_ss_metric_files_hold_exactly_the_lines_the_server_reads(tmp_path):
    # the server's SS scorer keeps the last line whose name contains si_sdr: only si_sdri is shipped
    write_run(tmp_path / "ss", "ss", "ss", {"si_sdri": 10.2},
              files={"metrics.txt": "si_sdri 10.2\nsi_sdr 9.1\nsi_sdr_input -1.1\nstoi 0.9\n"})
    assert plan_submission(collect([tmp_path / "ss"])).files == {"predict/ss_public/metrics.txt": b"si_sdri 10.200000\n"}
    # SE: pesq and stoi by those exact names, from results.json when the run wrote no metrics.txt
    write_run(tmp_path / "se", "se", "se", {"pesq": 2.61, "stoi": 0.94, "si_sdri": 8.0, "pesq_input": 1.9})
    assert plan_submission(collect([tmp_path / "se"])).files == {
        "predict/se_public/metrics.txt": b"pesq 2.610000\nstoi 0.940000\n"}
    write_run(tmp_path / "se2", "se", "se", {"pesq": 2.61, "stoi": 0.9}, files={"metrics.txt": "pesq 2.61\n"})
    with pytest.raises(SubmitError, match=r"se: .*metrics.txt has no stoi value; the leaderboard reads pesq, stoi"):
        plan_submission(collect([tmp_path / "se2"]))
    write_run(tmp_path / "se3", "se", "se", {"pesq": 2.61, "stoi": 0.9}, files={"metrics.txt": "pesq 2.61\npesq 2.7\nstoi 0.9\n"})
    with pytest.raises(SubmitError, match=r"metrics.txt:2: metric 'pesq' appears twice"):
        plan_submission(collect([tmp_path / "se3"]))


def test_asv_scores_must_be_finite_and_st_keeps_empty_fields(tmp_path):
    # the server's EER (sklearn roc_curve) fails on a NaN score, losing the whole ASV column
    write_run(tmp_path / "asv", "asv", "asv", {"eer": 5.0}, higher={"eer": False},
              files={"predict.txt": "id10270-a-00001_id10271-b-00002 nan\n"})
    with pytest.raises(SubmitError, match=r"predict.txt:1: expected `pair score` .* finite score"):
        plan_submission(collect([tmp_path / "asv"]))
    # an empty reference or hypothesis is an empty last field, which the server's DictReader reads
    write_run(tmp_path / "st", "st", "st", {"bleu": 1.0}, files={"predict.tsv": "id\thyp\tref\n0\tHallo\t\n1\t\tWelt\n"})
    assert plan_submission(collect([tmp_path / "st"])).files == {
        "predict/st_public/predict.tsv": b"id\thyp\tref\n0\tHallo\t\n1\t\tWelt\n"}
    write_run(tmp_path / "st2", "st", "st", {"bleu": 1.0}, files={"predict.tsv": "id\tHYP\tREF\n0\ta\tb\n"})
    with pytest.raises(SubmitError, match=r"header must name `hyp` and `ref`"):
        plan_submission(collect([tmp_path / "st2"]))

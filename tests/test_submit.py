"""``superb submit``: the public-set zip, file by file, from hand-written runs of every task."""
import io
import json
import zipfile

import numpy as np
import pytest

from superb.benchmark.cli import main
from superb.benchmark.export import collect
from superb.benchmark.submit import LAYOUT, SubmitError, fmt_ic_csv, fmt_pair_score, plan_submission

from results_fixtures import write_run

STDLIST = ('<?xml version="1.0" encoding="UTF-8"?>\n<stdlist termlist_filename="benchmark.stdlist.xml" '
           'indexing_time="1.0" language="english" index_size="1" system_id="superb">\n'
           '<detected_termlist termid="quesst14_eval_0001" term_search_time="1.0" oov_term_count="1">\n'
           '<term file="quesst14_00001" channel="1" tbeg="0.000" dur="0.00" score="2.5" decision="YES"/>\n'
           '</detected_termlist>\n</stdlist>\n')


def _er_run(root, folds=(1, 2, 3, 4, 5)):
    run = write_run(root, "er", "er", {"accuracy": 64.9}, folds={})
    data = json.loads((run / "results.json").read_text())
    for k in folds:
        p = run / f"fold{k}" / "predictions" / "test" / "predict.txt"
        p.parent.mkdir(parents=True)
        p.write_text(f"Ses0{k}F_impro01_F000 neu\nSes0{k}M_script02_M001 ang\n")
        data["folds"][str(k)] = {"metrics": {"test": {"accuracy": 64.9}},
                                 "predictions": {"test": [f"fold{k}/predictions/test/predict.txt"]}}
    (run / "results.json").write_text(json.dumps(data))
    return run


def all_tasks(root):
    write_run(root, "pr", "pr", {"per": 5.4}, files={"predict.ark": "1089-134686-0000 HH AH0 L OW1\n1089-134686-0001\n"})
    write_run(root, "asr", "asr", {"wer": 6.4}, files={"predict.ark": "1089-134686-0000 HELLO   WORLD\n"})
    write_run(root, "ks", "ks", {"accuracy": 96.3}, files={"predict.txt": "yes/0a2b400e_nohash_0.wav yes\n"})
    write_run(root, "sid", "sid", {"accuracy": 81.4}, files={"predict.txt": "id10270-5r0dWxy17C8-00001 id10270\n"})
    write_run(root, "ic", "ic", {"accuracy": 98.3},
              files={"predict.csv": "0a3129c0-4474-11e9-a9a5-5dbec3b8816a,activate,lights,none\n"})
    _er_run(root)
    write_run(root, "qbe", "qbe", {"mtwv": 7.36}, files={"benchmark.stdlist.xml": STDLIST})
    write_run(root, "sf", "sf", {"slot_type_f1": 88.5, "slot_value_cer": 25.2},
              files={"predict.ark": "Aditi-snips-test-0 PLAY B-artist JOHN E-artist\n"})
    write_run(root, "asv", "asv", {"eer": 5.1}, higher={"eer": False},
              files={"predict.txt": "id10270-x6uYqmx31kE-00001_id10300-ize_eiCFEg0-00003 0.412300\n",
                     "scores.txt": "id10270/x6uYqmx31kE/00001.wav id10300/ize_eiCFEg0/00003.wav 0.412300\n"})
    post = io.BytesIO()
    np.save(post, np.full((4, 2), 0.25, dtype=np.float32))
    write_run(root, "sd", "sd", {"der": 5.9}, higher={"der": False},
              files={"hyp.rttm": "SPEAKER rec1 1 0.00 1.50 <NA> <NA> 0 <NA> <NA>\n", "frame_shift": "320\n",
                     "setting.txt": "threshold 0.5\nmedian_filter 11\n", "posteriors/rec1.npy": post.getvalue()})
    write_run(root, "se", "se", {"pesq": 2.6, "stoi": 0.94})
    write_run(root, "ss", "ss", {"si_sdri": 10.2}, files={"metrics.txt": "si_sdri 10.2\n"})
    write_run(root, "st", "st", {"bleu": 15.5}, files={"predict.tsv": "id\thyp\tref\n0\tHallo Welt\tHallo Welt\n"})
    write_run(root, "vc", "vc", {"mcd": 8.0})


def test_zip_layout_file_by_file(tmp_path, capsys):
    all_tasks(tmp_path / "runs")
    out = tmp_path / "predict.zip"
    assert main(["submit", str(tmp_path / "runs"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "upstream hubert_base, 13 tasks" in printed and "not part of the public-set submission: vc" in printed
    with zipfile.ZipFile(out) as zf:
        files = {n: zf.read(n) for n in zf.namelist() if not n.endswith("/")}
        dirs = sorted(n for n in zf.namelist() if n.endswith("/"))
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in zf.infolist())
    assert dirs[0] == "predict/" and "predict/er_fold3_public/" in dirs and "predict/sd_public/posteriors/" not in dirs
    expected = {
        "predict/pr_public/predict.ark": "1089-134686-0000 HH AH0 L OW1\n1089-134686-0001\n",
        "predict/asr_public/predict.ark": "1089-134686-0000 HELLO WORLD\n",
        "predict/ks_public/predict.txt": "yes-0a2b400e_nohash_0.wav yes\n",  # the server's id form
        "predict/sid_public/predict.txt": "id10270-5r0dWxy17C8-00001 id10270\n",
        "predict/ic_public/predict.csv": "0a3129c0-4474-11e9-a9a5-5dbec3b8816a,activate,lights,none\n",
        **{f"predict/er_fold{k}_public/predict.txt": f"Ses0{k}F_impro01_F000 neu\nSes0{k}M_script02_M001 ang\n"
           for k in range(1, 6)},
        "predict/qbe_public/benchmark.stdlist.xml": STDLIST,
        "predict/sf_public/predict.ark": "Aditi-snips-test-0 PLAY B-artist JOHN E-artist\n",
        "predict/sv_public/predict.txt": "id10270-x6uYqmx31kE-00001_id10300-ize_eiCFEg0-00003 0.412300\n",
        "predict/sd_public/hyp.rttm": "SPEAKER rec1 1 0.00 1.50 <NA> <NA> 0 <NA> <NA>\n",
        "predict/sd_public/frame_shift": "320\n",
        "predict/sd_public/setting.txt": "threshold 0.5\nmedian_filter 11\n",
        "predict/se_public/metrics.txt": "pesq 2.600000\nstoi 0.940000\n",
        "predict/ss_public/metrics.txt": "si_sdri 10.200000\n",
        "predict/st_public/predict.tsv": "id\thyp\tref\n0\tHallo Welt\tHallo Welt\n",
    }
    h5py = pytest.importorskip("h5py")
    with h5py.File(io.BytesIO(files.pop("predict/sd_public/rec1.h5")), "r") as h5:  # the default: what the server scores
        assert h5["T_hat"][()].tolist() == [[0.25, 0.25]] * 4
    assert {n: b.decode() for n, b in files.items()} == expected
    # deterministic: the same runs give the same bytes
    again = tmp_path / "again.zip"
    assert main(["submit", str(tmp_path / "runs"), "--out", str(again)]) == 0
    assert again.read_bytes() == out.read_bytes()


def test_sd_frame_shift_from_upstream_and_h5_posteriors(tmp_path):
    h5py = pytest.importorskip("h5py")
    post = io.BytesIO()
    np.save(post, np.arange(6, dtype=np.float32).reshape(3, 2))
    write_run(tmp_path, "sd", "sd", {"der": 5.9}, downsample_rate=160,
              files={"hyp.rttm": "SPEAKER r 1 0.00 1.00 <NA> <NA> 0 <NA> <NA>\n", "posteriors/rec7.npy": post.getvalue()})
    plan = plan_submission(collect([tmp_path]))  # h5 is the default
    assert sorted(plan.files) == ["predict/sd_public/frame_shift", "predict/sd_public/hyp.rttm",
                                  "predict/sd_public/rec7.h5"]
    assert plan.files["predict/sd_public/frame_shift"] == b"160\n"  # no task file: the upstream's rate
    with h5py.File(io.BytesIO(plan.files["predict/sd_public/rec7.h5"]), "r") as h5:
        assert h5["T_hat"][()].tolist() == [[0, 1], [2, 3], [4, 5]]
    kept = plan_submission(collect([tmp_path]), sd_h5=False)  # --no-sd-h5: the run's files as they are
    assert sorted(kept.files) == ["predict/sd_public/frame_shift", "predict/sd_public/hyp.rttm",
                                  "predict/sd_public/posteriors/rec7.npy"]
    write_run(tmp_path / "rttm_only", "sd", "sd", {"der": 5.9},
              files={"hyp.rttm": "SPEAKER r 1 0.00 1.00 <NA> <NA> 0 <NA> <NA>\n"})
    with pytest.raises(SubmitError, match=r"sd: .* lists no posteriors .*sd_public/<recording>.h5.*--no-sd-h5"):
        plan_submission(collect([tmp_path / "rttm_only"]))
    assert sorted(plan_submission(collect([tmp_path / "rttm_only"]), sd_h5=False).files) == [
        "predict/sd_public/frame_shift", "predict/sd_public/hyp.rttm"]


def test_validation_names_missing_folds_tasks_and_bad_lines(tmp_path, capsys):
    _er_run(tmp_path / "a", folds=(1, 2, 3))
    with pytest.raises(SubmitError, match=r"er: folds 4, 5 missing \(er_fold4_public, er_fold5_public\)"):
        plan_submission(collect([tmp_path / "a"]))
    out = tmp_path / "x.zip"
    assert main(["submit", str(tmp_path / "a"), "--out", str(out)]) == 2
    assert "nothing was written" in capsys.readouterr().err and not out.exists()

    write_run(tmp_path / "b", "ks", "ks", {"accuracy": 90.0}, files={"predict.txt": "yes-a.wav yes\nno-b.wav no extra\n"})
    with pytest.raises(SubmitError, match=r"predict.txt:2: expected `utt label`, got 'no-b.wav no extra'"):
        plan_submission(collect([tmp_path / "b"]))
    write_run(tmp_path / "c", "pr", "pr", {"per": 9.0}, files={"predict.ark": "u1 A\nu1 B\n"})
    with pytest.raises(SubmitError, match=r"predict.ark:2: id 'u1' repeats line 1"):
        plan_submission(collect([tmp_path / "c"]))
    with pytest.raises(SubmitError, match=r"--require-all: no runs for ks, ic, sid, er, asr, asv, sd, qbe, sf, st, se, ss"):
        plan_submission(collect([tmp_path / "c"]), require_all=True)

    run = write_run(tmp_path / "d", "sid", "sid", {"accuracy": 80.0}, files={"predict.txt": "u spk\n"})
    (run / "predictions" / "test" / "predict.txt").unlink()
    with pytest.raises(SubmitError, match=r"sid: prediction file listed in results.json is missing: .*predict.txt"):
        plan_submission(collect([tmp_path / "d"]))

    write_run(tmp_path / "e", "ks", "ks", {"accuracy": 90.0}, files={"predict.txt": "yes-a.wav yes\n"})
    write_run(tmp_path / "e", "ks2", "ks", {"accuracy": 91.0}, upstream="wav2vec2", files={"predict.txt": "yes-a.wav yes\n"})
    with pytest.raises(SubmitError, match=r"one upstream; these runs have 2: .*hubert_base.*wav2vec2.*--upstream"):
        plan_submission(collect([tmp_path / "e"]))
    assert list(plan_submission(collect([tmp_path / "e"]), upstream="wav2vec2").files) == ["predict/ks_public/predict.txt"]

    write_run(tmp_path / "f", "qbe", "qbe", {"mtwv": 3.0}, files={"benchmark.stdlist.xml": "<termlist/>"})
    with pytest.raises(SubmitError, match=r"root element is <termlist>, expected <stdlist>"):
        plan_submission(collect([tmp_path / "f"]))


def test_format_conversions(tmp_path):
    ic = tmp_path / "ic.csv"
    ic.write_text("path,location,object,action\nwavs/a.wav,kitchen,lights,activate\n")
    assert fmt_ic_csv(ic) == b"wavs/a.wav,activate,lights,kitchen\n"
    asv = tmp_path / "scores.txt"
    asv.write_text("id10270/x6uYqmx31kE/00001.wav id10300/ize_eiCFEg0/00003.wav -0.25\n")
    assert fmt_pair_score(asv) == b"id10270-x6uYqmx31kE-00001_id10300-ize_eiCFEg0-00003 -0.25\n"
    asv.write_text("a b c\n")
    with pytest.raises(SubmitError, match=r"scores.txt:1: expected `pair score`"):
        fmt_pair_score(asv)


def test_layout_table_covers_the_public_set():
    from superb.benchmark import leaderboard as lb

    assert set(lb.VIEWS["public"]) <= set(LAYOUT) and set(lb.VIEWS["paper"]) <= set(LAYOUT)
    assert LAYOUT["asv"].folder == "sv_public" and LAYOUT["er"].folds == 5

"""``superb submit`` / ``export`` read results.json as untrusted data: prediction paths must stay
inside their run folder, an empty submission is an error, unknown results versions are refused."""
import json
import os
import zipfile

import pytest

from superb.benchmark.cli import main
from superb.benchmark.export import ExportError, collect
from superb.benchmark.submit import SubmitError, plan_submission

from results_fixtures import write_run

SECRET = "root:x:0:0:SECRET-TOKEN-42:/root:/bin/bash\n"


def _secret(tmp_path):
    p = tmp_path / "outside" / "passwd"
    p.parent.mkdir()
    p.write_text(SECRET)
    return p


def _point_prediction_at(run, rel):
    data = json.loads((run / "results.json").read_text())
    data["predictions"]["test"] = [rel]
    (run / "results.json").write_text(json.dumps(data))


def _refused(tmp_path, capsys, run, rel):
    """Both the API and the CLI refuse the run; no zip (so no secret) is written."""
    with pytest.raises(ExportError) as info:
        collect([run])
    msg = str(info.value)
    assert str(run / "results.json") in msg and repr(rel) in msg and "outside the run folder" in msg
    out = tmp_path / "predict.zip"
    assert main(["submit", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "outside the run folder" in err and "results.json" in err
    assert not out.exists()
    assert main(["export", str(run)]) == 2  # the leaderboard export refuses it too
    assert "outside the run folder" in capsys.readouterr().err


def test_relative_traversal_is_refused(tmp_path, capsys):
    secret = _secret(tmp_path)
    run = write_run(tmp_path / "runs", "ks", "ks", {"accuracy": 90.0}, files={"predict.txt": "a yes\n"})
    rel = os.path.relpath(secret, run)  # ../../outside/passwd
    assert rel.startswith("..")
    _point_prediction_at(run, rel)
    _refused(tmp_path, capsys, run, rel)
    # the /etc/passwd form of the issue, however deep: refused before anything is read
    _point_prediction_at(run, "../../../../../../../../etc/passwd")
    with pytest.raises(ExportError, match=r"results.json: prediction file '\.\./.*etc/passwd'.*outside the run folder"):
        collect([run])


def test_absolute_path_outside_is_refused(tmp_path, capsys):
    secret = _secret(tmp_path)
    run = write_run(tmp_path / "runs", "ks", "ks", {"accuracy": 90.0}, files={"predict.txt": "a yes\n"})
    _point_prediction_at(run, str(secret))
    _refused(tmp_path, capsys, run, str(secret))


def test_absolute_path_inside_the_run_is_accepted(tmp_path):
    run = write_run(tmp_path / "runs", "ks", "ks", {"accuracy": 90.0}, files={"predict.txt": "yes-a.wav yes\n"})
    _point_prediction_at(run, str((run / "predictions" / "test" / "predict.txt").resolve()))
    assert plan_submission(collect([run])).files == {"predict/ks_public/predict.txt": b"yes-a.wav yes\n"}


def test_symlink_pointing_outside_is_refused(tmp_path, capsys):
    secret = _secret(tmp_path)
    run = write_run(tmp_path / "runs", "ks", "ks", {"accuracy": 90.0}, files={"predict.txt": "a yes\n"})
    link = run / "predictions" / "test" / "predict.txt"
    link.unlink()
    link.symlink_to(secret)
    _refused(tmp_path, capsys, run, "predictions/test/predict.txt")


def test_symlinked_folder_in_sd_run_is_refused_and_zip_has_no_secret(tmp_path, capsys):
    """SD ships every listed file: a folder symlink must not smuggle the secret into the zip."""
    secret = _secret(tmp_path)
    run = write_run(tmp_path / "runs", "sd", "sd", {"der": 5.9}, higher={"der": False},
                    files={"hyp.rttm": "SPEAKER rec1 1 0.00 1.50 <NA> <NA> 0 <NA> <NA>\n", "frame_shift": "320\n"})
    (run / "predictions" / "test" / "extra").symlink_to(secret.parent, target_is_directory=True)
    data = json.loads((run / "results.json").read_text())
    data["predictions"]["test"].append("predictions/test/extra/passwd")
    (run / "results.json").write_text(json.dumps(data))
    out = tmp_path / "predict.zip"
    assert main(["submit", str(run), "--out", str(out)]) == 2
    assert "outside the run folder" in capsys.readouterr().err
    assert not out.exists()
    # without the bad entry the same run submits, and the zip never holds the secret
    data["predictions"]["test"].pop()
    (run / "results.json").write_text(json.dumps(data))
    assert main(["submit", str(run), "--out", str(out), "--no-sd-h5"]) == 0  # the run has no posteriors
    with zipfile.ZipFile(out) as zf:
        assert all(b"SECRET-TOKEN-42" not in zf.read(n) for n in zf.namelist())


def test_fold_prediction_outside_is_refused(tmp_path):
    secret = _secret(tmp_path)
    folds = {str(k): {"metrics": {"test": {"accuracy": 60.0}}, "predictions": {"test": [str(secret)]}}
             for k in range(1, 6)}
    run = write_run(tmp_path / "runs", "er", "er", {"accuracy": 60.0}, folds=folds)
    with pytest.raises(ExportError, match=r"er/results.json: prediction file .*passwd.*outside the run folder"):
        collect([run])


def test_empty_submission_is_an_error(tmp_path, capsys):
    run = write_run(tmp_path / "runs", "vc", "vc", {"mcd": 8.0}, higher={"mcd": False})
    with pytest.raises(SubmitError, match=r"nothing to submit for upstream hubert_base: its runs are of vc"):
        plan_submission(collect([run]))
    out = tmp_path / "predict.zip"
    assert main(["submit", str(run), "--out", str(out)]) == 2
    assert "nothing to submit" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("version", [2, 0, "1", None, True])
def test_unknown_results_version_is_refused(tmp_path, capsys, version):
    run = write_run(tmp_path / "runs", "ks", "ks", {"accuracy": 90.0}, files={"predict.txt": "a yes\n"})
    data = json.loads((run / "results.json").read_text())
    data["superb_results_version"] = version
    (run / "results.json").write_text(json.dumps(data))
    with pytest.raises(ExportError, match=r"ks/results.json: unknown superb_results_version .*reads version 1"):
        collect([run])
    assert main(["submit", str(run), "--out", str(tmp_path / "x.zip"), "--dry-run"]) == 2
    assert "unknown superb_results_version" in capsys.readouterr().err


def test_missing_results_version_is_refused(tmp_path):
    """The runner always wrote the field (version 1); a file without it is not a superb results.json."""
    run = write_run(tmp_path / "runs", "ks", "ks", {"accuracy": 90.0}, files={"predict.txt": "a yes\n"})
    data = json.loads((run / "results.json").read_text())
    del data["superb_results_version"]
    (run / "results.json").write_text(json.dumps(data))
    with pytest.raises(ExportError, match=r"missing key 'superb_results_version'"):
        collect([run])
    data["superb_results_version"] = 1
    (run / "results.json").write_text(json.dumps(data))
    assert collect([run]).upstreams["hubert_base"].tasks["ks"].metrics == {"accuracy": 90.0}

"""YAML configs (recipes, --config, --set) and --upstream-option: one-line errors naming the culprit."""
import pytest

from superb.benchmark.cli import main
from superb.benchmark.config import ConfigError, parse_set, resolve_config
from superb.recipes import available_recipes, load_recipe
from superb.upstream import build_upstream


def test_duplicate_key_in_config_file_names_key_line_and_file(tmp_path, capsys):
    cfg = tmp_path / "my.yaml"
    cfg.write_text("optimizer:\n  lr: 1.0e-3\n  name: Adam\n  lr: 5.0e-4\n")
    with pytest.raises(ConfigError) as info:
        resolve_config("ks", use_mini=True, config_file=str(cfg))
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{cfg}: ") and "duplicate key 'lr'" in msg and "line 4" in msg and "first at line 2" in msg
    # through the CLI: one line on stderr, exit 2, no traceback
    assert main(["run", "--upstream", "fbank", "--task", "ks", "--config", str(cfg), "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("superb: error: ") and "duplicate key 'lr'" in err and str(cfg) in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_duplicate_top_level_section_is_refused(tmp_path):
    cfg = tmp_path / "two_runners.yaml"
    cfg.write_text("runner:\n  total_steps: 5\noptimizer:\n  lr: 0.1\nrunner:\n  seed: 3\n")
    with pytest.raises(ConfigError, match=r"two_runners.yaml: .*line 5.*duplicate key 'runner' \(first at line 1\)"):
        resolve_config("ks", use_mini=True, config_file=str(cfg))


def test_yaml_syntax_error_names_file_line_and_column(tmp_path):
    cfg = tmp_path / "broken.yaml"
    cfg.write_text("runner:\n  total_steps: 5\n  seed: [1, 2\noptimizer:\n  lr: 0.1\n")
    with pytest.raises(ConfigError) as info:
        resolve_config("ks", use_mini=True, config_file=str(cfg))
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"{cfg}: invalid YAML at line ") and ", column " in msg
    bad_tab = tmp_path / "tab.yaml"
    bad_tab.write_text("runner:\n\ttotal_steps: 5\n")
    with pytest.raises(ConfigError, match=r"tab.yaml: invalid YAML at line 2, column 1: "):
        resolve_config("ks", use_mini=True, config_file=str(bad_tab))


def test_config_file_not_utf8_is_a_config_error(tmp_path):
    cfg = tmp_path / "latin1.yaml"
    cfg.write_bytes("runner:\n  seed: 1  # caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1.yaml: not UTF-8 text"):
        resolve_config("ks", use_mini=True, config_file=str(cfg))


def test_set_values_refuse_bad_yaml_and_duplicate_keys():
    with pytest.raises(ConfigError, match=r"--set 'runner.seed=\[1,': invalid YAML at line 1"):
        parse_set(["runner.seed=[1,"])
    with pytest.raises(ConfigError, match=r"--set 'task.x=\{a: 1, a: 2\}'.*duplicate key 'a'"):
        parse_set(["task.x={a: 1, a: 2}"])
    assert parse_set(["optimizer.lr=1e-3", "runner.seed=7"]) == {"optimizer": {"lr": 1e-3}, "runner": {"seed": 7}}


def test_unique_key_loader_keeps_merge_keys_and_every_recipe_loads():
    from superb.recipes import UniqueKeyLoader, parse_yaml

    text = "base: &b {lr: 1, steps: 2}\nrun:\n  <<: *b\n  lr: 3\n"
    assert parse_yaml(text, "x.yaml") == {"base": {"lr": 1, "steps": 2}, "run": {"lr": 3, "steps": 2}}
    assert issubclass(UniqueKeyLoader, __import__("yaml").SafeLoader)
    with pytest.raises(ValueError, match=r"x.yaml: .*could not determine a constructor"):
        parse_yaml("a: !!python/object:os.system x\n", "x.yaml")  # still safe loading
    for task in available_recipes():
        assert load_recipe(task)["task"]["name"] == task


def test_bogus_upstream_option_names_option_upstream_and_accepted():
    with pytest.raises(ValueError) as info:
        build_upstream("fbank", bogus=1)
    msg = str(info.value)
    assert not isinstance(info.value, TypeError)
    assert "'fbank'" in msg and "bogus" in msg and "accepted options: cmvn" in msg
    with pytest.raises(ValueError, match=r"'mfcc' does not accept option cmvm \(did you mean cmvm -> cmvn\?\); "
                                         r"accepted options: cmvn"):
        build_upstream("mfcc", cmvm=True)
    from superb.upstream.registry import accepted_options, get_spec

    assert accepted_options(get_spec("fbank")) == ["cmvn"]
    # a valid option still works, and a bad value still reaches the model's own check
    assert build_upstream("fbank", cmvn=True).cmvn is True
    assert build_upstream("mfcc").cmvn is False
    with pytest.raises(ValueError, match="cmvn must be true or false"):
        build_upstream("fbank", cmvn="yes")


def test_bogus_upstream_option_on_the_cli_is_one_line(tmp_path, capsys):
    assert main(["run", "--upstream", "fbank", "--task", "ks", "--data", str(tmp_path),
                 "--upstream-option", "bogus=1", "--output", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("superb: error: upstream 'fbank' does not accept option bogus") and "cmvn" in err


def test_type_errors_inside_model_code_are_not_rewritten(monkeypatch):
    """Only the option names are checked; a TypeError from inside the constructor stays a TypeError."""
    from superb.upstream import baselines

    def broken_init(self, cmvn=False):
        raise TypeError("internal bug")

    monkeypatch.setattr(baselines.FbankUpstream, "__init__", broken_init)
    with pytest.raises(TypeError, match="internal bug"):
        build_upstream("fbank", cmvn=True)

"""Every bad input gets a clear error naming the file, key or value."""
import numpy as np
import pytest
import soundfile as sf

from superb.benchmark.cli import main
from superb.benchmark.config import ConfigError, resolve_config
from superb.downstream.audio import AudioError, AudioSegment, load_audio, segment_for
from superb.downstream.corpora.speech_commands import speech_commands_manifest
from superb.downstream.tasks import UnknownTaskError, get_task
from superb.downstream.tasks.asr import librispeech_manifest
from superb.upstream import MissingWeightsError, UnknownUpstreamError, build_upstream


def _wav(path, samples=16000, sr=16000, channels=1):
    data = np.zeros((samples, channels), dtype=np.float32) + 0.1
    sf.write(path, data, sr, subtype="PCM_16")
    return path


def test_unreadable_and_corrupt_audio(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00not a wave file at all")
    with pytest.raises(AudioError, match="bad.wav"):
        segment_for(bad)
    with pytest.raises(AudioError, match="not found: .*missing.wav"):
        segment_for(tmp_path / "missing.wav")
    # a header that promises more samples than the file holds
    good = _wav(tmp_path / "cut.wav", samples=16000)
    seg = segment_for(good)
    good.write_bytes(good.read_bytes()[:20000])
    with pytest.raises(AudioError, match="cut.wav"):
        load_audio(seg)


def test_sample_rate_channels_empty_and_short_clips(tmp_path):
    with pytest.raises(AudioError, match=r"sr44.wav: sample rate 44100 Hz, expected 16000 Hz"):
        segment_for(_wav(tmp_path / "sr44.wav", sr=44100))
    with pytest.raises(AudioError, match="stereo.wav: 2 channels"):
        segment_for(_wav(tmp_path / "stereo.wav", channels=2))
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0,), dtype=np.float32), 16000, subtype="PCM_16")
    with pytest.raises(AudioError, match="empty.wav: the file holds no audio"):
        segment_for(empty)
    with pytest.raises(AudioError, match=r"short.wav: clip of 100 samples .* shorter than the minimum 400"):
        segment_for(_wav(tmp_path / "short.wav", samples=100))
    with pytest.raises(AudioError, match="outside its 16000 samples"):
        segment_for(_wav(tmp_path / "ok.wav"), start=15000, num_samples=2000)


def test_bad_audio_inside_a_corpus_is_reported_at_load_time(ks_data):
    _wav(ks_data / "speech_commands_v0.01" / "yes" / "ffff0009_nohash_0.wav", sr=8000)
    with pytest.raises(AudioError, match="yes/ffff0009_nohash_0.wav: sample rate 8000"):
        speech_commands_manifest(ks_data / "speech_commands_v0.01", ks_data / "speech_commands_test_set_v0.01")


def test_missing_list_and_listed_file(ks_data):
    root = ks_data / "speech_commands_v0.01"
    (root / "validation_list.txt").write_text("yes/nope_nohash_0.wav\n")
    with pytest.raises(FileNotFoundError, match="'yes/nope_nohash_0.wav' named in a list file"):
        speech_commands_manifest(root, ks_data / "speech_commands_test_set_v0.01")
    (root / "validation_list.txt").unlink()
    with pytest.raises(FileNotFoundError, match="validation_list.txt"):
        speech_commands_manifest(root, ks_data / "speech_commands_test_set_v0.01")


def test_missing_transcripts(libri_data):
    chapter = libri_data / "LibriSpeech" / "dev-clean" / "19" / "198"
    trans = chapter / "19-198.trans.txt"
    lines = trans.read_text().splitlines()
    trans.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ValueError, match="19-198.trans.txt: no transcript for audio 19-198-0002"):
        librispeech_manifest(libri_data / "LibriSpeech", "dev-clean")
    trans.unlink()
    with pytest.raises(FileNotFoundError, match="missing transcript file .*19-198.trans.txt"):
        librispeech_manifest(libri_data / "LibriSpeech", "dev-clean")
    trans.write_text("\n".join(lines).replace("HELLO", "HÉLLO") + "\n")
    with pytest.raises(ValueError, match=r"19-198-0000.*'É' is outside the ASR vocabulary"):
        librispeech_manifest(libri_data / "LibriSpeech", "dev-clean")


def test_unknown_names_suggest_close_matches():
    with pytest.raises(UnknownTaskError, match=r"unknown task 'kss'. Did you mean: (\w+, )*ks\b"):
        get_task("kss")
    with pytest.raises(UnknownUpstreamError, match="unknown upstream 'hubret'. Did you mean: hubert"):
        build_upstream("hubret")


def test_pretrained_upstream_without_weights_says_how_to_supply_them(tmp_path):
    with pytest.raises(MissingWeightsError, match="--upstream-ckpt PATH .* --random-init"):
        build_upstream("hubert")
    with pytest.raises(FileNotFoundError, match="model-hub identifier"):
        build_upstream("hubert", ckpt="facebook/hubert-base-ls960")
    with pytest.raises(FileNotFoundError, match="not found: .*nope.pt"):
        build_upstream("hubert", ckpt=tmp_path / "nope.pt")


def test_config_typos_are_named():
    with pytest.raises(ConfigError, match="unknown config key 'runner.total_step' .did you mean runner.total_steps"):
        resolve_config("ks", use_mini=True, sets=["runner.total_step=5"])
    with pytest.raises(ConfigError, match="--max-steps must be positive"):
        resolve_config("ks", use_mini=True, max_steps=0)


def test_cli_reports_user_errors_in_one_line(capsys, tmp_path):
    assert main(["run", "--upstream", "fbnk", "--task", "ks", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("superb: error: unknown upstream 'fbnk'") and "fbank" in err
    assert main(["run", "--upstream", "hubert", "--task", "asr", "--data", str(tmp_path)]) == 2
    assert "--random-init" in capsys.readouterr().err

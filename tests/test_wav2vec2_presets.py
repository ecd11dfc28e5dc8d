"""The registered presets have the published architectures: parameter counts equal torchaudio's
builders (wav2vec2_base, wav2vec2_large_lv60k, hubert_base, hubert_large) and transformers'
default Data2VecAudioConfig (data2vec-audio-base). Built on the meta device (no memory, fast).
Needs torchaudio and transformers (test-only)."""
import pytest
import torch

from superb.upstream.wav2vec2 import PRESETS, Wav2Vec2Model


def _count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name,builder", [("wav2vec2", "wav2vec2_base"), ("wav2vec2_large", "wav2vec2_large_lv60k"),
                                          ("hubert", "hubert_base"), ("hubert_large", "hubert_large")])
def test_preset_matches_torchaudio(name, builder):
    import torchaudio

    with torch.device("meta"):
        ref = getattr(torchaudio.models, builder)()
        ours = Wav2Vec2Model(PRESETS[name])
    assert _count(ours) == _count(ref)
    assert len(ours.encoder.layers) == len(ref.encoder.transformer.layers)


def test_data2vec_preset_matches_transformers():
    import transformers

    with torch.device("meta"):
        ref = transformers.Data2VecAudioModel(transformers.Data2VecAudioConfig())
        ours = Wav2Vec2Model(PRESETS["data2vec"])
    assert _count(ours) == _count(ref) - ref.masked_spec_embed.numel()

"""BEST-RQ: every hidden state against speechbrain 1.1.2's own modules (Fbank, InputNormalization,
ConvolutionFrontEnd, TransformerASR conformer with RelPosMHAXL, RandomProjectionQuantizer), with the
weights written as a SpeechBrain checkpoint folder; plus superb's own file format."""
from __future__ import annotations

import pytest
import torch

from golden_utils import assert_states_close, golden_batch, randomize_
from superb.upstream import build_upstream
from superb.upstream.best_rq import save_checkpoint
from superb.upstream.checkpoint_io import CheckpointKeyError
from superb.upstream.inspection import inspect_checkpoint

sb_features = pytest.importorskip("speechbrain.lobes.features")
sb_norm = pytest.importorskip("speechbrain.processing.features")
sb_conv = pytest.importorskip("speechbrain.lobes.models.convolution")
sb_asr = pytest.importorskip("speechbrain.lobes.models.transformer.TransformerASR")
sb_quant = pytest.importorskip("speechbrain.nnet.quantisers")
sb_linear = pytest.importorskip("speechbrain.nnet.linear")

HPARAMS = """\
# excerpt of a SpeechBrain BEST-RQ experiment's hyperparams.yaml (hyperpyyaml tags kept)
seed: 1000
__set_seed: !apply:speechbrain.utils.seed_everything [!ref <seed>]
n_mels: {n_mels}
d_model: 32
activation: !name:torch.nn.GELU
CNN: !new:speechbrain.lobes.models.convolution.ConvolutionFrontEnd
    input_shape: (8, 10, {n_mels})
    num_blocks: 2
    num_layers_per_block: {per_block}
    out_channels: (8, 4)
    kernel_sizes: (3, 3)
    strides: (2, 2)
    residuals: ({res}, False)
Transformer: !new:speechbrain.lobes.models.transformer.TransformerASR.TransformerASR
    input_size: 40
    d_model: !ref <d_model>
    conformer_activation: !ref <activation>
    encoder_module: conformer
    attention_type: RelPosMHAXL
normalize: !new:speechbrain.processing.features.InputNormalization
    norm_type: {norm}
"""


class Reference:
    """SpeechBrain's BEST-RQ pipeline (as in the recipe's train.py, without masking)."""

    def __init__(self, n_mels=40, per_block=1, residual=False, norm_type="sentence", activation=torch.nn.GELU,
                 seed=0):
        torch.manual_seed(seed)
        self.fbank = sb_features.Fbank(sample_rate=16000, n_fft=400, n_mels=n_mels)
        self.normalize = sb_norm.InputNormalization(norm_type=norm_type)
        self.cnn = sb_conv.ConvolutionFrontEnd(
            input_shape=(8, 10, n_mels), num_blocks=2, num_layers_per_block=per_block, out_channels=(8, 4),
            kernel_sizes=(3, 3), strides=(2, 2), residuals=(residual, False))
        f = n_mels
        for _ in range(2):
            f = (f - 1) // 2 + 1
        self.transformer = sb_asr.TransformerASR(
            input_size=4 * f, tgt_vocab=64, d_model=32, nhead=4, num_encoder_layers=2, num_decoder_layers=0,
            d_ffn=40, dropout=0.0, activation=activation, conformer_activation=activation, kernel_size=7,
            encoder_module="conformer", attention_type="RelPosMHAXL", normalize_before=True, causal=False)
        self.wrapper = sb_asr.EncoderWrapper(self.transformer)
        self.model = torch.nn.ModuleList([self.cnn, self.wrapper])
        randomize_(self.model, seed, scale=0.3)
        self.quantizer = sb_quant.RandomProjectionQuantizer(4 * n_mels, 16, 64)
        self.linear = sb_linear.Linear(input_size=32, n_neurons=64)
        for m in (self.model, self.normalize, self.quantizer, self.linear):
            m.eval()
        self.n_mels = n_mels

    def fit_global_stats(self, wavs):
        self.normalize.train()
        for w in wavs:
            self.normalize(self.fbank(w[None]), torch.ones(1))
        self.normalize.eval()

    def write(self, folder):
        folder.mkdir(parents=True)
        (folder / "CKPT.yaml").write_text("# yamllint disable\nend-of-epoch: true\nunixtime: 1700000000.0\n"
                                          "valid_loss: 5.25\n")
        torch.save(self.model.state_dict(), folder / "model.ckpt")
        self.normalize._save(folder / "normalize.ckpt")
        torch.save(self.quantizer.state_dict(), folder / "quantizer.ckpt")
        torch.save(self.linear.state_dict(), folder / "linear.ckpt")
        torch.save({"step": 1234}, folder / "noam_scheduler.ckpt")
        return folder

    @torch.no_grad()
    def states(self, wav):
        feats = self.normalize(self.fbank(wav[None]), torch.ones(1))
        src = self.cnn(feats)
        inputs = []
        hooks = [layer.register_forward_pre_hook(lambda mod, args, kwargs: inputs.append(args[0]), with_kwargs=True)
                 for layer in self.transformer.encoder.layers]
        out = self.wrapper(src, torch.ones(1))
        for h in hooks:
            h.remove()
        return inputs + [out], feats

    @torch.no_grad()
    def targets(self, feats):
        T = feats.shape[1]
        feats = torch.nn.functional.pad(feats, (0, 0, 0, (-T) % 4))
        return self.quantizer(feats.view(1, feats.shape[1] // 4, -1))[0]


def compare(model, ref, lengths=None):
    wavs, wav_lens, raw = golden_batch(*([lengths] if lengths else []))
    with torch.no_grad():
        out = model(wavs, wav_lens)
    per = [ref.states(w) for w in raw]
    expected = [torch.nn.utils.rnn.pad_sequence([p[0][i][0] for p in per], batch_first=True)
                for i in range(len(per[0][0]))]
    ref_lens = [p[0][0].shape[1] for p in per]
    assert len(out.hidden_states) == len(expected) == model.num_layers == 3
    assert out.lengths.tolist() == ref_lens
    assert_states_close(out.hidden_states, expected, out.lengths, ref_lens, what="best_rq")
    return out, wavs, wav_lens, per


def test_speechbrain_folder_every_layer_and_targets(tmp_path):
    ref = Reference(n_mels=40, seed=1)
    exp = tmp_path / "results" / "1000"
    folder = ref.write(exp / "save" / "CKPT+2024-05-01+10-00-00+00")
    (exp / "hyperparams.yaml").write_text(HPARAMS.format(n_mels=40, per_block=1, res="False", norm="sentence"))
    model = build_upstream("best_rq", folder)
    assert model.downsample_rate == 640
    out, wavs, wav_lens, per = compare(model, ref)
    # frames: n // 160 + 1 features, then ceil(T / 2) twice
    t0 = wav_lens // 160 + 1
    assert out.lengths.tolist() == ((((t0 + 1) // 2) + 1) // 2).tolist()
    # the random-projection quantizer and the prediction head came with the model
    idx, lens = model.targets(wavs, wav_lens)
    for u, (states, feats) in enumerate(per):
        n = int(lens[u])
        assert torch.equal(idx[u, :n], ref.targets(feats))
    assert torch.equal(model.head.weight, ref.linear.w.weight)
    assert lens.tolist() == out.lengths.tolist()
    info = inspect_checkpoint(folder)
    assert (info["upstream"], info["downsample_rate"], info["num_layers"]) == ("best_rq", 640, 3)


def test_model_ckpt_path_global_norm_residual_cnn_swish_option(tmp_path):
    # no hyperparams.yaml: recipe defaults (80 mels, strides 2) apply; the activation comes as an option
    ref = Reference(n_mels=80, per_block=2, residual=True, norm_type="global", activation=torch.nn.SiLU, seed=2)
    _, _, raw = golden_batch()
    ref.fit_global_stats(raw)
    folder = ref.write(tmp_path / "CKPT+x")
    model = build_upstream("best_rq", folder / "model.ckpt", activation="swish")
    assert model.config.normalization == "global"
    compare(model, ref)


def test_own_format_round_trip(tmp_path):
    model = build_upstream("best_rq", random_init=True, n_mels=40, cnn_channels=(8, 4), d_model=32, num_layers=2,
                           nhead=4, d_ffn=40, conv_kernel=7, codebook_size=32)
    randomize_(model, 3)
    path = save_checkpoint(model, tmp_path / "best_rq.pt")
    again = build_upstream("best_rq", path)
    wavs, wav_lens, _ = golden_batch((7000, 3000))
    with torch.no_grad():
        a, b = model(wavs, wav_lens), again(wavs, wav_lens)
    assert all(torch.equal(x, y) for x, y in zip(a.hidden_states, b.hidden_states))
    assert torch.equal(model.quantizer_CB, again.quantizer_CB)
    assert inspect_checkpoint(path)["format"] == "superb BEST-RQ file"


def test_errors(tmp_path):
    ref = Reference(n_mels=40, seed=4)
    folder = ref.write(tmp_path / "CKPT+bad")
    # 40 mels but no hyperparams.yaml: the 80-mel default cannot match the projection
    with pytest.raises(ValueError, match="n_mels"):
        build_upstream("best_rq", folder)
    assert build_upstream("best_rq", folder, n_mels=40).config.n_mels == 40
    state = torch.load(folder / "model.ckpt")
    state["1.transformer.encoder.layers.0.extra.weight"] = torch.zeros(1)
    torch.save(state, folder / "model.ckpt")
    with pytest.raises(CheckpointKeyError, match="extra"):
        build_upstream("best_rq", folder, n_mels=40)
    with pytest.raises(ValueError, match="pass one of them"):
        build_upstream("best_rq", tmp_path)
    torch.save({"x": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a BEST-RQ checkpoint"):
        build_upstream("best_rq", tmp_path / "other.pt")


def test_random_init_is_the_recipe():
    small = build_upstream("best_rq", random_init=True, d_model=16, nhead=2, num_layers=1, d_ffn=16,
                           cnn_channels="(4, 2)", codebook_size=16.0)  # as --upstream-option gives them
    wavs, wav_lens, _ = golden_batch((16000, 8000))
    out = small(wavs, wav_lens)
    assert out.lengths.tolist() == [26, 13]  # 101 -> 51 -> 26 and 51 -> 26 -> 13 frames of 40 ms
    assert len(out.hidden_states) == 2

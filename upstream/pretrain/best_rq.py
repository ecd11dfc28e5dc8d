"""Objective ``best_rq``: BERT-style pretraining with a random-projection quantizer (BEST-RQ, Chiu et
al. 2022, arXiv 2202.01855), as SpeechBrain's open recipe trains it (Whetten et al. 2024,
``recipes/LibriSpeech/self-supervised-learning/BEST-RQ``: ``hparams/BEST-RQ.yaml``, ``train.py``,
``speechbrain.lobes.models.BESTRQ`` and ``speechbrain.nnet.quantisers.RandomProjectionQuantizer``).

The model is the ``best_rq`` upstream itself (:class:`superb.upstream.best_rq.BestRQUpstream`): its
front end (80 log-mel fbank, per-utterance normalisation) gives the loop's features; its CNN and
Conformer encode them (4x subsampling: one output frame per group of ``stack_frames`` = 4 fbank
frames); its head ``head`` (``d_model -> codebook_size``) gives the logits. Its buffers
``quantizer_P`` (Xavier-uniform ``stack_frames * n_mels -> codebook_dim``) and ``quantizer_CB``
(random rows, L2-normalised) are the frozen quantizer: drawn once at initialisation (from the run's
seed), never trained, kept in the objective's ``state_dict`` (exact resume) and exported.

Per batch (facts of the recipe's ``train.py`` / ``BESTRQ.compute_mask``, described, not copied):

* targets (:func:`quantize`): the unmasked features, zero-padded to a multiple of
  ``stack_frames``, every group of ``stack_frames`` frames stacked into one vector,
  ``normalise(stack @ P)``, the index of the nearest codeword of ``CB`` (L2);
* masking (:func:`group_mask`), per utterance of ``n`` valid fbank frames: ``int(mask_prob * n + u)``
  (``u`` uniform in [0, 1): probabilistic rounding; at least 1) span starts drawn without
  replacement among the group boundaries (multiples of ``stack_frames``); every start masks
  ``mask_span`` groups; the masked fbank frames are replaced by noise ``N(noise_mean, noise_std)``;
* loss (:func:`best_rq_loss`): cross-entropy of the head's logits against the targets, averaged
  over the masked output frames (groups) of the batch.

Values: the recipe's ``mask_prob`` 0.15 and ``mask_length`` 4 fbank frames (one group, 40 ms;
0.15 x 4 = 60 % of the frames masked), noise ``N(0, 0.1)``, ``cb_vocab`` 8192, ``cb_dim`` 16,
``p_input`` 320 (4 x 80). The paper masks each frame as a span start with probability 0.01, spans
of 400 ms (``--set mask_prob=0.01 --set mask_span=10``), with a codebook of 8192 x 16.

Deliberate differences: (1) the recipe draws one mask for the whole batch from its shortest
utterance; here every utterance draws its own spans within its own frames (nothing depends on the
batch); (2) no dropout (the recipe's ``transformer_dropout`` 0.1: the upstream's modules have
none) and no dynamic-chunk (streaming) training; (3) Adam (the loop's) instead of AdamW
(0.9, 0.98, eps 1e-9, weight decay 0.01), and the loop's linear warm-up then constant rate instead
of the Noam schedule (warm-up 25 000 steps, then inverse square root).

Presets: ``base`` = the recipe (Conformer 12 x 576, 8 heads, FFN 2048, convolution kernel 31,
GELU, CNN channels (128, 32); codebook 8192 x 16; masking 0.15 / 4 frames, noise 0.1; lr 8e-4
with 25 000 warm-up steps, gradient norm 10; 300 000 steps; 400 s of audio per batch (the
recipe's ``max_batch_len``, before its gradient accumulation of 2 and its GPUs); utterances up to
60 s). ``tiny`` = 2 layers of 96, 4 heads, FFN 256, kernel 15, CNN (16, 8), codebook 256 x 16,
the recipe's masking; Adam 1e-3, 10 warm-up steps, 1000 steps of 16 s batches: on the default
mini corpus (1000 files) on one CPU thread the loss falls from 5.8 (about log 256) to about 2.7
(mean of the last 10 steps) in about 3 minutes (measured).

Export: superb's BEST-RQ file ``{'format': 'superb.best_rq', 'version': 1, 'config',
'state_dict', 'step'}`` (the whole upstream: front end, CNN, Conformer, ``quantizer_P``,
``quantizer_CB``, ``head``), read by ``build_upstream("best_rq", ckpt=FILE)``.
:func:`write_speechbrain_folder` turns it into a SpeechBrain checkpoint folder ``CKPT+.../``
(``model.ckpt`` with the recipe's ``ModuleList([CNN, EncoderWrapper])`` names, ``quantizer.ckpt``
``{'P', 'CB'}``, ``linear.ckpt`` ``{'w.weight', 'w.bias'}``, ``CKPT.yaml``, and a
``hyperparams.yaml`` with what shapes cannot tell) that SpeechBrain's modules and our loader read.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Tuple

import torch
import torch.nn.functional as F

from ..best_rq.import_superb import OWN_FORMAT
from ..best_rq.model import BestRQConfig, BestRQUpstream
from ..state_dict import map_keys
from .loop import LoopConfig, Objective

#: our weight names -> SpeechBrain's model.ckpt names (the inverse of
#: superb.upstream.best_rq.SPEECHBRAIN_KEY_MAP)
TO_SPEECHBRAIN_KEY_MAP: Tuple[Tuple[str, str], ...] = (
    (r"cnn\.(\d+)\.layers\.(\d+)\.conv\.(weight|bias)", r"0.convblock_\1.convs.conv_\2.conv.\3"),
    (r"cnn\.(\d+)\.layers\.(\d+)\.norm\.(weight|bias)", r"0.convblock_\1.convs.norm_\2.norm.\3"),
    (r"cnn\.(\d+)\.reduce\.conv\.(weight|bias)", r"0.convblock_\1.reduce_conv.conv.conv.\2"),
    (r"cnn\.(\d+)\.reduce\.norm\.(weight|bias)", r"0.convblock_\1.reduce_conv.norm.norm.\2"),
    (r"input_proj\.(weight|bias)", r"1.transformer.custom_src_module.layers.0.w.\1"),
    (r"encoder_norm\.(weight|bias)", r"1.transformer.encoder.norm.norm.\1"),
    (r"layers\.(\d+)\.attn\.(in_proj_weight|pos_bias_u|pos_bias_v)", r"1.transformer.encoder.layers.\1.mha_layer.\2"),
    (r"layers\.(\d+)\.attn\.(out_proj|linear_pos)\.(weight|bias)", r"1.transformer.encoder.layers.\1.mha_layer.\2.\3"),
    (r"layers\.(\d+)\.conv\.norm_in\.(weight|bias)", r"1.transformer.encoder.layers.\1.convolution_module.layer_norm.\2"),
    (r"layers\.(\d+)\.conv\.pointwise\.(weight|bias)", r"1.transformer.encoder.layers.\1.convolution_module.bottleneck.0.\2"),
    (r"layers\.(\d+)\.conv\.depthwise\.(weight|bias)", r"1.transformer.encoder.layers.\1.convolution_module.conv.\2"),
    (r"layers\.(\d+)\.conv\.norm_out\.(weight|bias)", r"1.transformer.encoder.layers.\1.convolution_module.after_conv.0.\2"),
    (r"layers\.(\d+)\.conv\.linear\.(weight|bias)", r"1.transformer.encoder.layers.\1.convolution_module.after_conv.2.\2"),
    (r"layers\.(\d+)\.ffn([12])\.norm\.(weight|bias)", r"1.transformer.encoder.layers.\1.ffn_module\2.0.\3"),
    (r"layers\.(\d+)\.ffn([12])\.fc1\.(weight|bias)", r"1.transformer.encoder.layers.\1.ffn_module\2.1.ffn.0.\3"),
    (r"layers\.(\d+)\.ffn([12])\.fc2\.(weight|bias)", r"1.transformer.encoder.layers.\1.ffn_module\2.1.ffn.3.\3"),
    (r"layers\.(\d+)\.attn_norm\.(weight|bias)", r"1.transformer.encoder.layers.\1.norm1.norm.\2"),
    (r"layers\.(\d+)\.final_norm\.(weight|bias)", r"1.transformer.encoder.layers.\1.norm2.norm.\2"),
)
#: our names that are not in SpeechBrain's model.ckpt (they go to quantizer / linear / normalize)
NOT_IN_MODEL_CKPT = ("glob_mean", "glob_std", "quantizer_P", "quantizer_CB", "head.weight", "head.bias")


def _tiny_model() -> BestRQConfig:
    return BestRQConfig(cnn_channels=(16, 8), d_model=96, num_layers=2, nhead=4, d_ffn=256, conv_kernel=15,
                        codebook_size=256, codebook_dim=16)


@dataclass
class BestRQPretrainConfig:
    """What to pretrain: the upstream's architecture and quantizer sizes (``model``) plus the
    masking (recipe names in the comments)."""

    model: BestRQConfig = field(default_factory=BestRQConfig)
    #: mask_prob: span starts per valid fbank frame
    mask_prob: float = 0.15
    #: mask_length / stack_frames: groups (output frames) per span
    mask_span: int = 1
    #: noise_mean / noise_std of the replacement of masked frames
    noise_mean: float = 0.0
    noise_std: float = 0.1

    def validate(self, where: str = "best_rq") -> None:
        if not 0.0 < float(self.mask_prob) <= 1.0:
            raise ValueError(f"{where}: mask_prob must be in (0, 1], got {self.mask_prob}")
        if int(self.mask_span) < 1:
            raise ValueError(f"{where}: mask_span must be >= 1, got {self.mask_span}")
        if not float(self.noise_std) >= 0.0:
            raise ValueError(f"{where}: noise_std must be >= 0, got {self.noise_std}")
        m = self.model
        stride = math.prod(m.cnn_strides)
        if m.stack_frames != stride:
            raise ValueError(f"{where}: model.stack_frames ({m.stack_frames}) must equal the CNN's time "
                             f"subsampling prod(cnn_strides) = {stride} (one target per output frame)")
        if m.normalization == "global":
            raise ValueError(f"{where}: model.normalization 'global' needs statistics; pretrain with 'sentence'")


PRESETS: Dict[str, Tuple[BestRQPretrainConfig, LoopConfig]] = {
    "tiny": (BestRQPretrainConfig(model=_tiny_model()),
             LoopConfig(max_steps=1000, lr=1e-3, batch_seconds=16.0, max_frames=400, grad_clip=10.0,
                        save_every=100, warmup_steps=10)),
    "base": (BestRQPretrainConfig(),
             LoopConfig(max_steps=300_000, lr=8e-4, batch_seconds=400.0, max_frames=6000, grad_clip=10.0,
                        save_every=5_000, warmup_steps=25_000)),
}


def quantize(feats: torch.Tensor, lengths: torch.Tensor, P: torch.Tensor, CB: torch.Tensor,
             stack: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The random-projection quantizer: ``[B, T, D]`` features (zero after each utterance) ->
    codebook indices ``[B, ceil(T / stack)]`` and the valid groups ``ceil(lengths / stack)``."""
    B, T, D = feats.shape
    if P.shape[0] != stack * D:
        raise ValueError(f"quantize: P has {P.shape[0]} inputs, expected stack_frames * n_mels = {stack * D}")
    x = F.pad(feats, (0, 0, 0, (-T) % stack)).reshape(B, -1, stack * D)
    x = F.normalize(x @ P, dim=-1)
    idx = torch.cdist(x, CB.unsqueeze(0).expand(B, -1, -1)).argmin(dim=-1)
    return idx, torch.div(lengths + stack - 1, stack, rounding_mode="floor")


def group_mask(lengths: torch.Tensor, num_frames: int, stack: int, mask_prob: float, span: int,
               generator: torch.Generator) -> torch.Tensor:
    """``[B, ceil(num_frames / stack)]`` bool, True on masked groups (the rule of the module
    docstring); groups at or past ``ceil(lengths[b] / stack)`` are never masked."""
    G = -(-int(num_frames) // stack)
    mask = torch.zeros(len(lengths), G, dtype=torch.bool)
    for b, n in enumerate(lengths.tolist()):
        groups = -(-min(int(n), num_frames) // stack)
        if groups == 0:
            continue
        s = min(int(span), groups)
        available = groups - s + 1
        u = float(torch.rand((), generator=generator))
        count = min(max(1, int(mask_prob * n + u)), available)
        for start in torch.randperm(available, generator=generator)[:count].tolist():
            mask[b, start:start + s] = True
    return mask


def best_rq_loss(logits: torch.Tensor, targets: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``logits`` ``[B, G, V]`` against ``targets`` ``[B, G]`` over the
    ``masked`` ``[B, G]`` groups."""
    if logits.shape[:2] != targets.shape or masked.shape != targets.shape:
        raise ValueError(f"best_rq_loss: logits {tuple(logits.shape)}, targets {tuple(targets.shape)} and mask "
                         f"{tuple(masked.shape)} do not match ([B, G, V], [B, G], [B, G])")
    if int(masked.sum()) == 0:
        raise ValueError("best_rq_loss: no masked frame in the batch")
    return F.cross_entropy(logits[masked], targets[masked])


class BestRQObjective(Objective):
    name = "best_rq"
    upstream_name = "best_rq"

    def __init__(self, cfg: BestRQPretrainConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.model = BestRQUpstream(cfg.model, "best_rq pretraining")
        self.hop = int(cfg.model.hop_length)
        # at least 16 fbank frames (the centred STFT gives n // hop + 1): 4 output frames, 4 targets
        self.min_samples = 4 * self.hop * cfg.model.stack_frames

    def features(self, wavs, wav_lens):
        return self.model.features(wavs.float(), wav_lens)

    def mask_and_targets(self, feats: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator):
        """``(noised features, targets [B, G], masked groups [B, G])`` of a batch."""
        m = self.cfg.model
        s = m.stack_frames
        B, T, D = feats.shape
        lengths = lengths.to(feats.device)
        with torch.no_grad():
            targets, glens = quantize(feats, lengths, self.model.quantizer_P, self.model.quantizer_CB, s)
        masked = group_mask(lengths.cpu(), T, s, self.cfg.mask_prob, self.cfg.mask_span, generator).to(feats.device)
        frames = masked.repeat_interleave(s, dim=1)[:, :T]
        frames &= torch.arange(T, device=feats.device)[None, :] < lengths[:, None]
        noise = torch.randn(B, T, D, generator=generator) * self.cfg.noise_std + self.cfg.noise_mean
        x = torch.where(frames[..., None], noise.to(feats.device, feats.dtype), feats)
        return x, targets, masked

    def loss(self, feats, lengths, generator):
        x, targets, masked = self.mask_and_targets(feats, lengths, generator)
        states, n = self.model.encode(x, lengths.to(feats.device))
        logits = self.model.head(states[-1])
        if logits.shape[1] != targets.shape[1]:
            raise ValueError(f"best_rq: the encoder gives {logits.shape[1]} frames for {targets.shape[1]} targets")
        return best_rq_loss(logits, targets, masked)

    def export(self, step: int, loop: LoopConfig) -> Dict[str, Any]:
        cfg = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self.cfg.model).items()}
        state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        return {"format": OWN_FORMAT, "version": 1, "config": cfg, "state_dict": state, "step": int(step),
                "pretraining": {"objective": "best_rq", "mask_prob": self.cfg.mask_prob,
                                "mask_span": self.cfg.mask_span, "noise_std": self.cfg.noise_std,
                                "lr": float(loop.lr)}}


def write_speechbrain_folder(ckpt: Dict[str, Any], folder) -> Path:
    """Write an exported BEST-RQ file (:meth:`BestRQObjective.export`) as a SpeechBrain checkpoint
    folder ``folder`` (created; see the module docstring); returns it. Sentence normalisation is
    stateless: no ``normalize.ckpt`` is written."""
    if not isinstance(ckpt, dict) or ckpt.get("format") != OWN_FORMAT:
        raise ValueError(f"write_speechbrain_folder: expected a {OWN_FORMAT!r} checkpoint")
    cfg, state = ckpt["config"], ckpt["state_dict"]
    if cfg.get("normalization") != "sentence":
        raise ValueError(f"write_speechbrain_folder: normalization {cfg.get('normalization')!r} is not written "
                         "(only 'sentence')")
    folder = Path(folder)
    folder.mkdir(parents=True)
    model = map_keys({k: v for k, v in state.items() if k not in NOT_IN_MODEL_CKPT}, TO_SPEECHBRAIN_KEY_MAP)
    unmapped = sorted(k for k in model if k[:2] not in ("0.", "1."))
    if unmapped:
        raise ValueError(f"write_speechbrain_folder: weights without a SpeechBrain name: {unmapped}")
    torch.save(model, folder / "model.ckpt")
    torch.save({"P": state["quantizer_P"], "CB": state["quantizer_CB"]}, folder / "quantizer.ckpt")
    torch.save({"w.weight": state["head.weight"], "w.bias": state["head.bias"]}, folder / "linear.ckpt")
    (folder / "CKPT.yaml").write_text(f"# yamllint disable\nend-of-epoch: false\nstep: {int(ckpt.get('step', 0))}\n")
    act = {"gelu": "torch.nn.GELU", "swish": "torch.nn.SiLU", "relu": "torch.nn.ReLU"}[cfg["activation"]]
    strides = ", ".join(str(int(s)) for s in cfg["cnn_strides"])
    (folder / "hyperparams.yaml").write_text(
        f"n_mels: {int(cfg['n_mels'])}\n"
        "CNN: !new:speechbrain.lobes.models.convolution.ConvolutionFrontEnd\n"
        f"    strides: ({strides})\n"
        "Transformer: !new:speechbrain.lobes.models.transformer.TransformerASR.TransformerASR\n"
        f"    conformer_activation: !name:{act}\n"
        "normalize: !new:speechbrain.processing.features.InputNormalization\n"
        "    norm_type: sentence\n")
    return folder


def preset(name: str, preset_name: str):
    cfg, loop = PRESETS[preset_name]
    return copy.deepcopy(cfg), copy.deepcopy(loop)


def build(name: str, cfg: BestRQPretrainConfig) -> BestRQObjective:
    return BestRQObjective(cfg)

"""fairseq-format export shared by the wav2vec 2.0-family pretraining objectives (``wav2vec2``,
``hubert``, ``data2vec``, ``vicreg``), plus the small pieces of fairseq's training setup they
share (waveform preparation, ``GradMultiply``, the ``post_extract_proj`` rule).

Each objective trains a :class:`~superb.upstream.wav2vec2.model.Wav2Vec2Model` and exports it as
the checkpoint fairseq's pretraining would have written, so that ``superb run --upstream <family>
--upstream-ckpt FILE`` (:mod:`superb.upstream.wav2vec2.import_fairseq`) and fairseq's / s3prl's
models read it unchanged. The objective adds its own pretraining-only weights (``mask_emb``,
``final_proj.*``, the quantizer, ``label_embs_concat``, ``_ema``, ...) and its own model, task
and criterion fields; everything else lives here. Facts of fairseq's format encoded here (fairseq
``Wav2Vec2Config`` / ``HubertConfig`` / ``Data2VecAudioConfig``, ``AudioPretrainingConfig``,
``checkpoint_utils.save_checkpoint``; described, no code copied):

* **Weight names** (:data:`TO_FAIRSEQ_KEY_MAP`, :func:`fairseq_state`): the inverse of the
  loader's :data:`~superb.upstream.wav2vec2.import_fairseq.FAIRSEQ_KEY_MAP`, as explicit
  ``(regex, replacement)`` rules applied with :func:`superb.upstream.state_dict.map_keys`. CNN
  convolution ``N`` is fairseq's ``conv_layers.N.0``; the CNN norm depends on the extractor mode
  (:func:`cnn_norm_key_map`): group-norm mode (fairseq ``extractor_mode="default"``) has one
  ``GroupNorm`` after convolution 0, ``conv_layers.0.2``; layer-norm mode a LayerNorm after every
  convolution, ``conv_layers.N.2.1`` (inside ``TransposeLast, LayerNorm, TransposeLast``). The
  feature LayerNorm is the top-level ``layer_norm``, the projection ``post_extract_proj``, one
  weight-normed positional convolution ``encoder.pos_conv.0``, a stack of them (data2vec)
  ``encoder.pos_conv.N.0``, attention ``self_attn.*`` and the FFN ``fc1`` / ``fc2`` directly
  under the layer. Every exported name is checked to map back to exactly our names through the
  loader's map.
* **Model fields** (:func:`fairseq_model_cfg`): ``_name`` per family (:data:`FAIRSEQ_NAMES`),
  ``extractor_mode`` (``default`` = group norm), ``conv_feature_layers`` as the Python literal
  fairseq evaluates (:func:`conv_feature_layers`: one list of ``(dim, kernel, stride)`` tuples,
  or runs of equal layers as ``[(c, k, s)] * n`` as fairseq's published configs write them),
  ``encoder_*``, ``conv_pos`` (:func:`fairseq_conv_pos`: for a stack of ``depth`` positional
  convolutions fairseq uses kernels ``max(3, conv_pos // depth)``), ``conv_pos_groups``,
  ``pos_conv_depth``; dropouts 0 (the upstream model has none).
* **Checkpoint layout** (:func:`fairseq_checkpoint`): ``{'cfg': {'_name': None, 'model', 'task',
  ..., 'optimization'}, 'args': None, 'model': state, 'optimizer_history': [{'criterion_name',
  'optimizer_name', 'num_updates'}], 'extra_state', 'last_optimizer_state': None}``; the task of
  wav2vec 2.0 and data2vec is ``audio_pretraining`` (:func:`audio_pretraining_task`:
  ``normalize``, 16 kHz, ``max_sample_size`` the loop's crop in samples).
* **fairseq builds** ``post_extract_proj`` exactly when the CNN's output width differs from the
  encoder width (:func:`check_post_extract_proj`); its loaders refuse the extra weights otherwise.
* **Waveform input** (:func:`prepare_waveforms`, :func:`model_inputs`): with ``normalize`` each
  utterance is normalised over its valid samples (fairseq's ``F.layer_norm`` of the unpadded
  waveform); padding is zero either way.
* ``feature_grad_mult`` (:class:`GradMultiply`, :func:`register_grad_multiply`): identity forward,
  the gradient reaching the CNN times ``scale``.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from ..base import valid_mask
from ..state_dict import map_keys, rename_keys
from ..wav2vec2.import_fairseq import FAIRSEQ_KEY_MAP
from ..wav2vec2.model import Wav2Vec2Config, Wav2Vec2Model, normalize_waveforms
from .loop import LoopConfig
from .masked import HOP, fairseq_has_post_extract_proj, frames_to_waveform

SAMPLE_RATE = 16000

#: fairseq ``model._name`` of each family
FAIRSEQ_NAMES = {"wav2vec2": "wav2vec2", "hubert": "hubert", "data2vec": "data2vec_audio"}

#: our weight names -> fairseq's (the inverse of superb.upstream.wav2vec2.import_fairseq.FAIRSEQ_KEY_MAP),
#: except the CNN norms (:func:`cnn_norm_key_map`); the first full match wins
TO_FAIRSEQ_KEY_MAP: Tuple[Tuple[str, str], ...] = (
    (r"feature_extractor\.conv_layers\.(\d+)\.conv\.(weight|bias)", r"feature_extractor.conv_layers.\1.0.\2"),
    (r"feature_projection\.layer_norm\.(weight|bias)", r"layer_norm.\1"),
    (r"feature_projection\.projection\.(weight|bias)", r"post_extract_proj.\1"),
    (r"encoder\.pos_conv\.(weight_g|weight_v|bias)", r"encoder.pos_conv.0.\1"),
    (r"encoder\.pos_conv\.layers\.(\d+)\.conv\.(weight|bias)", r"encoder.pos_conv.\1.0.\2"),
    (r"encoder\.layers\.(\d+)\.attention\.(q_proj|k_proj|v_proj|out_proj)\.(weight|bias)",
     r"encoder.layers.\1.self_attn.\2.\3"),
    (r"encoder\.layers\.(\d+)\.attention_layer_norm\.(weight|bias)", r"encoder.layers.\1.self_attn_layer_norm.\2"),
    (r"encoder\.layers\.(\d+)\.feed_forward\.fc([12])\.(weight|bias)", r"encoder.layers.\1.fc\2.\3"),
    (r"encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)", r"encoder.layers.\1.final_layer_norm.\2"),
    (r"encoder\.layer_norm\.(weight|bias)", r"encoder.layer_norm.\1"),
)
#: CNN norms: group-norm mode has one GroupNorm after conv 0 (fairseq ``conv_layers.0.2``),
#: layer-norm mode a LayerNorm after every conv (fairseq ``conv_layers.N.2.1``)
GROUP_NORM_KEYS: Tuple[Tuple[str, str], ...] = (
    (r"feature_extractor\.conv_layers\.0\.norm\.(weight|bias)", r"feature_extractor.conv_layers.0.2.\1"),)
LAYER_NORM_KEYS: Tuple[Tuple[str, str], ...] = (
    (r"feature_extractor\.conv_layers\.(\d+)\.norm\.(weight|bias)", r"feature_extractor.conv_layers.\1.2.1.\2"),)


# -- architecture facts ---------------------------------------------------------------------------------


def receptive_field(conv_layers) -> int:
    """Samples one frame of the CNN ``conv_layers`` (``(dim, kernel, stride)`` triples) sees."""
    n = 1
    for _, kernel, stride in reversed(conv_layers):
        n = (n - 1) * stride + kernel
    return n


def check_post_extract_proj(config: Wav2Vec2Config, where: str) -> None:
    """``ValueError`` unless ``config.post_extract_proj`` is what fairseq's model of the family
    has (:func:`superb.upstream.pretrain.masked.fairseq_has_post_extract_proj`)."""
    expected = fairseq_has_post_extract_proj(config)
    if config.post_extract_proj != expected:
        rule = ("data2vec audio always has it" if config.family == "data2vec" else
                f"fairseq has the projection exactly when the CNN width ({config.conv_layers[-1][0]}) differs "
                f"from model.hidden_size ({config.hidden_size})")
        raise ValueError(f"{where}: model.post_extract_proj must be {expected} ({rule}), got {config.post_extract_proj}")


def fairseq_conv_pos(config: Wav2Vec2Config, where: str = "model") -> int:
    """fairseq's ``conv_pos`` for ``config``: the kernel itself for one positional convolution; for
    a stack of ``depth`` a value with ``max(3, conv_pos // depth) == kernel`` (``kernel * depth``)."""
    if config.pos_conv_depth == 1:
        return int(config.pos_conv_kernel)
    if config.pos_conv_kernel < 3:
        raise ValueError(f"{where}: pos_conv_kernel={config.pos_conv_kernel} with pos_conv_depth="
                         f"{config.pos_conv_depth} cannot be written as fairseq's conv_pos (kernels are >= 3)")
    return int(config.pos_conv_kernel) * int(config.pos_conv_depth)


def conv_feature_layers(conv_layers, runs: bool = False) -> str:
    """fairseq's ``conv_feature_layers`` string: ``"[(c, k, s), ...]"``, or with ``runs`` the
    runs of equal layers as ``"[(c, k, s)] * n"`` joined by ``" + "``."""
    if not runs:
        return repr([tuple(layer) for layer in conv_layers])
    parts: List[str] = []
    i = 0
    while i < len(conv_layers):
        j = i
        while j + 1 < len(conv_layers) and conv_layers[j + 1] == conv_layers[i]:
            j += 1
        c, k, s = conv_layers[i]
        parts.append(f"[({c}, {k}, {s})]" + (f" * {j - i + 1}" if j > i else ""))
        i = j + 1
    return " + ".join(parts)


def fairseq_model_cfg(config: Wav2Vec2Config, *, conv_runs: bool = False, pos_conv_depth: bool = True,
                      **extra) -> Dict[str, Any]:
    """fairseq's model configuration (field names of fairseq's ``Wav2Vec2Config`` and its
    subclasses) of ``config``, dropouts 0, plus ``extra`` (the objective's fields; they win).
    ``conv_runs``: ``conv_feature_layers`` in runs (:func:`conv_feature_layers`);
    ``pos_conv_depth``: write the ``pos_conv_depth`` field (fairseq's HuBERT has none)."""
    cfg = {
        "_name": FAIRSEQ_NAMES[config.family],
        "extractor_mode": "default" if config.extractor_mode == "group_norm" else "layer_norm",
        "conv_feature_layers": conv_feature_layers(config.conv_layers, runs=conv_runs),
        "conv_bias": bool(config.conv_bias),
        "encoder_layers": int(config.num_layers),
        "encoder_embed_dim": int(config.hidden_size),
        "encoder_ffn_embed_dim": int(config.ffn_dim),
        "encoder_attention_heads": int(config.num_heads),
        "activation_fn": "gelu",
        "layer_norm_first": bool(config.layer_norm_first),
        "conv_pos": fairseq_conv_pos(config),
        "conv_pos_groups": int(config.pos_conv_groups),
        "pos_conv_depth": int(config.pos_conv_depth),
        "dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0, "dropout_input": 0.0,
        "dropout_features": 0.0, "encoder_layerdrop": 0.0, "feature_grad_mult": 1.0,
    }
    if not pos_conv_depth:
        del cfg["pos_conv_depth"]
    cfg.update(extra)
    return cfg


# -- weights --------------------------------------------------------------------------------------------


def cnn_norm_key_map(extractor_mode: str) -> Tuple[Tuple[str, str], ...]:
    """The CNN-norm rules of ``extractor_mode`` (``group_norm`` or ``layer_norm``)."""
    return GROUP_NORM_KEYS if extractor_mode == "group_norm" else LAYER_NORM_KEYS


def to_fairseq_key_map(extractor_mode: str) -> Tuple[Tuple[str, str], ...]:
    """The whole our-name -> fairseq-name table of a model with ``extractor_mode``."""
    return cnn_norm_key_map(extractor_mode) + TO_FAIRSEQ_KEY_MAP


def fairseq_weights(state: Mapping[str, torch.Tensor], extractor_mode: str, prefix: str = ""
                    ) -> Dict[str, torch.Tensor]:
    """``state`` (our names, relative to ``prefix``: ``"encoder."`` for an encoder's own state
    dict) under fairseq's names (relative to the same prefix), as detached CPU copies. Every
    name must have a rule and map back to exactly ours through the loader's ``FAIRSEQ_KEY_MAP``."""
    table = to_fairseq_key_map(extractor_mode)
    ours = {prefix + k: v for k, v in state.items()}
    unmatched = [k for k in ours if not any(re.fullmatch(p, k) for p, _ in table)]
    if unmatched:
        raise ValueError(f"fairseq export: no fairseq name for weight(s) {unmatched[:6]}")
    out = map_keys(ours, table)
    back, _ = rename_keys(out, FAIRSEQ_KEY_MAP)
    if set(back) != set(ours):
        raise AssertionError(f"fairseq export: names do not round-trip: {sorted(set(back) ^ set(ours))[:6]}")
    return {k[len(prefix):]: v.detach().cpu().clone() for k, v in out.items()}


def fairseq_state(model: Wav2Vec2Model) -> Dict[str, torch.Tensor]:
    """``model``'s weights under fairseq's names (:func:`fairseq_weights`)."""
    return fairseq_weights(model.state_dict(), model.config.extractor_mode)


def module_state(modules: Sequence[Tuple[str, nn.Module]]) -> Dict[str, torch.Tensor]:
    """The weights of ``(prefix, module)`` pairs, named ``prefix + name`` (the pretraining-only
    heads, whose names fairseq shares with ours), as detached CPU copies."""
    return {prefix + k: v.detach().cpu().clone() for prefix, module in modules for k, v in module.state_dict().items()}


# -- the checkpoint -------------------------------------------------------------------------------------


def audio_pretraining_task(config: Wav2Vec2Config, loop: LoopConfig, name: str = "audio_pretraining",
                           **extra) -> Dict[str, Any]:
    """fairseq's task configuration (``AudioPretrainingConfig`` fields) plus ``extra``."""
    task = {"_name": name, "normalize": bool(config.normalize), "sample_rate": SAMPLE_RATE,
            "max_sample_size": int(loop.max_frames) * HOP}
    task.update(extra)
    return task


def fairseq_checkpoint(model_cfg: Dict[str, Any], task_cfg: Dict[str, Any], state: Dict[str, Any], step: int,
                       loop: LoopConfig, *, sections: Optional[Dict[str, Any]] = None,
                       criterion_name: str = "ModelCriterion", optimizer_name: Optional[str] = "Adam",
                       extra_state: Optional[Dict[str, Any]] = None,
                       extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """A fairseq pretraining checkpoint dict (the layout fairseq's ``save_checkpoint`` writes):
    ``cfg`` holds ``model_cfg``, ``task_cfg``, the further ``sections`` (``criterion``,
    ``common``, ...) and the loop's ``optimization``; ``optimizer_history`` names
    ``criterion_name`` and ``optimizer_name`` (None: no such field); ``extra_state`` (default:
    ``{"superb": "superb pretrain"}``); ``extra``: further top-level entries."""
    history: Dict[str, Any] = {"criterion_name": criterion_name}
    if optimizer_name is not None:
        history["optimizer_name"] = optimizer_name
    history["num_updates"] = int(step)
    ckpt = {
        "cfg": {"_name": None, "model": model_cfg, "task": task_cfg, **(sections or {}),
                "optimization": {"max_update": int(loop.max_steps), "lr": [float(loop.lr)],
                                 "clip_norm": float(loop.grad_clip)}},
        "args": None,
        "model": state,
        "optimizer_history": [history],
        "extra_state": {"superb": "superb pretrain"} if extra_state is None else extra_state,
        "last_optimizer_state": None,
    }
    ckpt.update(extra or {})
    return ckpt


# -- training input -------------------------------------------------------------------------------------


def model_inputs(config: Wav2Vec2Config, wavs: torch.Tensor, wav_lens: torch.Tensor) -> torch.Tensor:
    """A padded waveform batch as the upstream feeds it to the model: normalised per utterance
    when ``config.normalize``; padding zero."""
    if config.normalize:
        return normalize_waveforms(wavs, wav_lens, eps=config.normalize_eps)
    return wavs * valid_mask(wav_lens, wavs.shape[1]).to(wavs.dtype)


def prepare_waveforms(config: Wav2Vec2Config, feats: torch.Tensor, lengths: torch.Tensor
                      ) -> Tuple[torch.Tensor, torch.Tensor]:
    """The loop's rows -> the waveform batch (float, :func:`model_inputs`) and its lengths in samples."""
    wavs, wav_lens = frames_to_waveform(feats, lengths)
    return model_inputs(config, wavs.float(), wav_lens), wav_lens


class GradMultiply(torch.autograd.Function):
    """Identity forward, gradient times ``scale`` backward (fairseq's ``GradMultiply``)."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


def register_grad_multiply(module: nn.Module, scale: float):
    """Scale the gradient that flows back into ``module``'s output by ``scale`` (a forward hook;
    returns its handle)."""
    return module.register_forward_hook(lambda mod, inputs, out: GradMultiply.apply(out, scale))

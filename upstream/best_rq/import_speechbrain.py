"""SpeechBrain BEST-RQ checkpoint folders -> :class:`~superb.upstream.best_rq.model.BestRQUpstream`.

A folder ``CKPT+<date>/`` with ``CKPT.yaml``, ``model.ckpt``, ``normalize.ckpt``, ``quantizer.ckpt``
and ``linear.ckpt`` (facts of SpeechBrain's BEST-RQ recipe). The architecture is read from weight
shapes and, when present, ``hyperparams.yaml`` (plain YAML, tags ignored, nothing executed). The
weight renaming is data: :data:`SPEECHBRAIN_KEY_MAP`; :data:`SPEECHBRAIN_DROP` lists unused parts.
"""
from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

import torch

from ..checkpoint_io import safe_load
from ..options import config_from_options
from ..state_dict import load_strict, map_keys
from .import_superb import OWN_FORMAT
from .model import BestRQConfig, BestRQUpstream

#: SpeechBrain ``model.ckpt`` name -> ours (``0.`` = ConvolutionFrontEnd, ``1.`` = EncoderWrapper)
SPEECHBRAIN_KEY_MAP: Tuple[Tuple[str, str], ...] = (
    (r"0\.convblock_(\d+)\.convs\.conv_(\d+)\.conv\.(weight|bias)", r"cnn.\1.layers.\2.conv.\3"),
    (r"0\.convblock_(\d+)\.convs\.norm_(\d+)\.norm\.(weight|bias)", r"cnn.\1.layers.\2.norm.\3"),
    (r"0\.convblock_(\d+)\.reduce_conv\.conv\.conv\.(weight|bias)", r"cnn.\1.reduce.conv.\2"),
    (r"0\.convblock_(\d+)\.reduce_conv\.norm\.norm\.(weight|bias)", r"cnn.\1.reduce.norm.\2"),
    (r"1\.transformer\.custom_src_module\.layers\.0\.w\.(weight|bias)", r"input_proj.\1"),
    (r"1\.transformer\.encoder\.norm\.norm\.(weight|bias)", r"encoder_norm.\1"),
    (r"1\.transformer\.encoder\.layers\.(\d+)\.mha_layer\.(in_proj_weight|pos_bias_u|pos_bias_v)", r"layers.\1.attn.\2"),
    (r"1\.transformer\.encoder\.layers\.(\d+)\.mha_layer\.(out_proj|linear_pos)\.(weight|bias)", r"layers.\1.attn.\2.\3"),
    (r"1\.transformer\.encoder\.layers\.(\d+)\.convolution_module\.layer_norm\.(weight|bias)", r"layers.\1.conv.norm_in.\2"),
    (r"1\.transformer\.encoder\.layers\.(\d+)\.convolution_module\.bottleneck\.0\.(weight|bias)", r"layers.\1.conv.pointwise.\2"),
    (r"1\.transformer\.encoder\.layers\.(\d+)\.convolution_module\.conv\.(weight|bias)", r"layers.\1.conv.depthwise.\2"),
    (r"1\.transformer\.encoder\.layers\.(\d+)\.convolution_module\.after_conv\.0\.(weight|bias)", r"layers.\1.conv.norm_out.\2"),
    (r"1\.transformer\.encoder\.layers\.(\d+)\.convolution_module\.after_conv\.2\.(weight|bias)", r"layers.\1.conv.linear.\2"),
    (r"1\.transformer\.encoder\.layers\.(\d+)\.ffn_module([12])\.0\.(weight|bias)", r"layers.\1.ffn\2.norm.\3"),
    (r"1\.transformer\.encoder\.layers\.(\d+)\.ffn_module([12])\.1\.ffn\.0\.(weight|bias)", r"layers.\1.ffn\2.fc1.\3"),
    (r"1\.transformer\.encoder\.layers\.(\d+)\.ffn_module([12])\.1\.ffn\.3\.(weight|bias)", r"layers.\1.ffn\2.fc2.\3"),
    (r"1\.transformer\.encoder\.layers\.(\d+)\.norm1\.norm\.(weight|bias)", r"layers.\1.attn_norm.\2"),
    (r"1\.transformer\.encoder\.layers\.(\d+)\.norm2\.norm\.(weight|bias)", r"layers.\1.final_norm.\2"),
)
#: deterministic buffers and decoder-side parts of TransformerASR, not used by the encoder
SPEECHBRAIN_DROP = (r"1\.transformer\.positional_encoding\.", r"1\.transformer\.positional_encoding_decoder\.",
                    r"1\.transformer\.decoder\.", r"1\.transformer\.custom_tgt_module\.")

def find_speechbrain_folder(path: Path) -> Optional[Path]:
    if path.is_dir() and (path / "CKPT.yaml").is_file() and (path / "model.ckpt").is_file():
        return path
    if path.is_file() and path.name == "model.ckpt" and (path.parent / "CKPT.yaml").is_file():
        return path.parent
    return None


def detect(obj: Any) -> bool:
    """True for superb's own BEST-RQ file, or a SpeechBrain BEST-RQ ``model.ckpt`` state dict."""
    if isinstance(obj, Mapping) and obj.get("format") == OWN_FORMAT:
        return True
    return isinstance(obj, Mapping) and any(str(k).startswith("1.transformer.encoder.layers.") for k in obj) \
        and any(str(k).startswith("0.convblock_") for k in obj)


class _TagLoader:
    """A ``yaml.SafeLoader`` that reads hyperpyyaml files as plain data: every ``!tag`` node
    becomes ``{'__tag__': tag, 'value': ...}``; nothing is imported or called."""

    @staticmethod
    def load(text: str):
        import yaml

        class Loader(yaml.SafeLoader):
            pass

        def tagged(loader, suffix, node):
            if isinstance(node, yaml.MappingNode):
                value = loader.construct_mapping(node, deep=True)
            elif isinstance(node, yaml.SequenceNode):
                value = loader.construct_sequence(node, deep=True)
            else:
                value = loader.construct_scalar(node)
            return {"__tag__": "!" + suffix, "value": value}

        Loader.add_multi_constructor("!", tagged)
        return yaml.load(text, Loader=Loader)  # noqa: S506 - SafeLoader subclass


def _hparams(folder: Path) -> Dict[str, Any]:
    """Settings of a SpeechBrain ``hyperparams.yaml`` found in ``folder`` or up to two levels up."""
    for d in (folder, folder.parent, folder.parent.parent):
        f = d / "hyperparams.yaml"
        if f.is_file():
            try:
                data = _TagLoader.load(f.read_text())
            except Exception as exc:  # noqa: BLE001 - a broken yaml must not block loading weights
                raise ValueError(f"{f}: cannot read it as YAML ({exc})") from None
            return data if isinstance(data, dict) else {}
    return {}


def _resolve(value: Any, top: Mapping[str, Any]) -> Any:
    if isinstance(value, dict) and value.get("__tag__") == "!ref":
        m = re.fullmatch(r"<([\w.]+)>", str(value["value"]).strip())
        if m and m.group(1) in top:
            return _resolve(top[m.group(1)], top)
    return value


def _tuple_of_ints(value: Any) -> Optional[Tuple[int, ...]]:
    if isinstance(value, (list, tuple)):
        return tuple(int(v) for v in value)
    if isinstance(value, str):
        nums = re.findall(r"-?\d+", value)
        return tuple(int(v) for v in nums) if nums else None
    return None


def _settings_from_hparams(hp: Mapping[str, Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    if "n_mels" in hp:
        out["n_mels"] = int(_resolve(hp["n_mels"], hp))
    cnn = hp.get("CNN")
    if isinstance(cnn, dict) and isinstance(cnn.get("value"), dict):
        strides = _tuple_of_ints(_resolve(cnn["value"].get("strides"), hp))
        if strides:
            out["cnn_strides"] = strides
    tr = hp.get("Transformer")
    if isinstance(tr, dict) and isinstance(tr.get("value"), dict):
        act = _resolve(tr["value"].get("conformer_activation"), hp)
        # "!name:torch.nn.GELU" puts the class in the tag; "!new:..." likewise
        name = f"{act.get('__tag__', '')}{act.get('value') or ''}" if isinstance(act, dict) else act
        if isinstance(name, str):
            low = name.lower()
            out["activation"] = "gelu" if "gelu" in low else "swish" if ("swish" in low or "silu" in low) else \
                "relu" if low.endswith("relu") else None
            if out["activation"] is None:
                raise ValueError(f"hyperparams.yaml: conformer_activation {name!r} is not supported")
        elif act is None and "conformer_activation" not in tr["value"]:
            out["activation"] = "swish"  # TransformerASR's default conformer activation
    norm = hp.get("normalize")
    if isinstance(norm, dict) and isinstance(norm.get("value"), dict) and "norm_type" in norm["value"]:
        out["normalization"] = str(_resolve(norm["value"]["norm_type"], hp))
    return out


def config_from_speechbrain(state: Mapping[str, torch.Tensor], hp: Mapping[str, Any], where: str) -> BestRQConfig:
    """Architecture from ``model.ckpt`` shapes (+ hyperparams.yaml settings)."""
    blocks = sorted({int(m.group(1)) for k in state if (m := re.match(r"0\.convblock_(\d+)\.", k))})
    if not blocks or blocks != list(range(len(blocks))):
        raise ValueError(f"{where}: model.ckpt has no ConvolutionFrontEnd weights 0.convblock_N.*")
    per_block = len({k for k in state if re.fullmatch(r"0\.convblock_0\.convs\.conv_\d+\.conv\.weight", k)})
    channels, kernels, residuals = [], [], []
    for b in blocks:
        w = state.get(f"0.convblock_{b}.convs.conv_0.conv.weight")
        if w is None:
            raise ValueError(f"{where}: 0.convblock_{b}.convs.conv_0.conv.weight is missing")
        channels.append(int(w.shape[0]))
        kernels.append(int(w.shape[-1]))
        residuals.append(f"0.convblock_{b}.reduce_conv.conv.conv.weight" in state)
    layers = sorted({int(m.group(1)) for k in state if (m := re.match(r"1\.transformer\.encoder\.layers\.(\d+)\.", k))})
    if not layers:
        raise ValueError(f"{where}: model.ckpt has no Conformer layers 1.transformer.encoder.layers.N.*")
    proj = state.get("1.transformer.custom_src_module.layers.0.w.weight")
    if proj is None:
        raise ValueError(f"{where}: 1.transformer.custom_src_module.layers.0.w.weight is missing")
    p0 = "1.transformer.encoder.layers.0."
    for key in ("mha_layer.pos_bias_u", "ffn_module1.1.ffn.0.weight", "convolution_module.conv.weight"):
        if p0 + key not in state:
            raise ValueError(f"{where}: {p0 + key} is missing (not a RelPosMHAXL Conformer)")
    values = dict(
        cnn_channels=tuple(channels), cnn_kernels=tuple(kernels), cnn_residuals=tuple(residuals),
        cnn_strides=(2,) * len(blocks), cnn_layers_per_block=per_block, d_model=int(proj.shape[0]),
        num_layers=len(layers), nhead=int(state[p0 + "mha_layer.pos_bias_u"].shape[1]),
        d_ffn=int(state[p0 + "ffn_module1.1.ffn.0.weight"].shape[0]),
        conv_kernel=int(state[p0 + "convolution_module.conv.weight"].shape[-1]),
    )
    values.update(_settings_from_hparams(hp))
    return dataclasses.replace(BestRQConfig(), **values)


def _speechbrain_extras(folder: Path, cfg: BestRQConfig) -> Tuple[Dict[str, torch.Tensor], BestRQConfig]:
    """Our buffers / head from ``normalize.ckpt``, ``quantizer.ckpt`` and ``linear.ckpt``."""
    extra: Dict[str, torch.Tensor] = {}
    norm_file = folder / "normalize.ckpt"
    if norm_file.is_file():
        stats = safe_load(norm_file)
        if not isinstance(stats, Mapping) or "count" not in stats:
            raise ValueError(f"{norm_file}: expected InputNormalization statistics {{'count', 'glob_mean', 'glob_std'}}")
        count = int(stats["count"])
        if count > 0:
            mean, std = stats.get("glob_mean"), stats.get("glob_std")
            if not isinstance(mean, torch.Tensor) or mean.numel() != cfg.n_mels:
                raise ValueError(f"{norm_file}: glob_mean must have {cfg.n_mels} values")
            extra["glob_mean"], extra["glob_std"] = mean.reshape(-1).float(), std.reshape(-1).float()
            cfg = dataclasses.replace(cfg, normalization="global")
    q_file = folder / "quantizer.ckpt"
    if q_file.is_file():
        q = safe_load(q_file)
        if not isinstance(q, Mapping) or "P" not in q or "CB" not in q:
            raise ValueError(f"{q_file}: expected the RandomProjectionQuantizer buffers 'P' and 'CB', found "
                             f"{sorted(q) if isinstance(q, Mapping) else type(q).__name__}")
        P, CB = q["P"], q["CB"]
        if P.shape[0] % cfg.n_mels:
            raise ValueError(f"{q_file}: P has {P.shape[0]} inputs, not a multiple of n_mels={cfg.n_mels}")
        cfg = dataclasses.replace(cfg, stack_frames=P.shape[0] // cfg.n_mels, codebook_size=int(CB.shape[0]),
                                  codebook_dim=int(CB.shape[1]))
        extra["quantizer_P"], extra["quantizer_CB"] = P, CB
    lin_file = folder / "linear.ckpt"
    if lin_file.is_file():
        lin = safe_load(lin_file)
        if not isinstance(lin, Mapping) or "w.weight" not in lin:
            raise ValueError(f"{lin_file}: expected a speechbrain Linear state dict with 'w.weight'")
        extra["head.weight"], extra["head.bias"] = lin["w.weight"], lin["w.bias"]
        cfg = dataclasses.replace(cfg, codebook_size=int(lin["w.weight"].shape[0]))
    return extra, cfg


def load_speechbrain_folder(folder: Path, **options) -> BestRQUpstream:
    state = safe_load(folder / "model.ckpt")
    if not detect(state):
        raise ValueError(f"{folder / 'model.ckpt'}: not a SpeechBrain BEST-RQ model (expected 0.convblock_* and "
                         "1.transformer.encoder.layers.* weights)")
    cfg = config_from_speechbrain(state, _hparams(folder), str(folder))
    cfg = config_from_options(BestRQConfig, cfg, options, str(folder))
    extra, cfg = _speechbrain_extras(folder, cfg)
    cfg = config_from_options(BestRQConfig, cfg, options, str(folder))  # explicit options win
    model = BestRQUpstream(cfg, str(folder))
    expected_cnn = model.cnn_out_dim
    if state["1.transformer.custom_src_module.layers.0.w.weight"].shape[1] != expected_cnn:
        raise ValueError(
            f"{folder}: the CNN front end gives {expected_cnn} values per frame with n_mels={cfg.n_mels} and "
            f"cnn_strides={cfg.cnn_strides}, but the projection expects "
            f"{state['1.transformer.custom_src_module.layers.0.w.weight'].shape[1]}; pass n_mels=... / "
            "cnn_strides=... options (or keep hyperparams.yaml next to the checkpoint)")
    weights = map_keys(state, SPEECHBRAIN_KEY_MAP)
    own = model.state_dict()
    for key in ("glob_mean", "glob_std", "quantizer_P", "quantizer_CB", "head.weight", "head.bias"):
        weights[key] = extra.get(key, own[key])  # parts the folder does not hold keep their initial values
    load_strict(model, weights, folder / "model.ckpt", drop_patterns=SPEECHBRAIN_DROP)
    model.eval()
    return model


def describe_path(path: Path) -> Dict[str, Any]:
    folder = find_speechbrain_folder(Path(path))

    state = safe_load(folder / "model.ckpt")
    cfg = config_from_speechbrain(state, _hparams(folder), str(folder))
    _, cfg = _speechbrain_extras(folder, cfg)
    return {"family": "best_rq", "format": "SpeechBrain BEST-RQ checkpoint folder", "upstreams": ["best_rq"],
            "num_hidden_states": cfg.num_layers + 1, "d_model": cfg.d_model, "nhead": cfg.nhead,
            "normalization": cfg.normalization,
            "files": sorted(p.name for p in folder.iterdir() if p.is_file()),
            "downsample_rate": cfg.hop_length * math.prod(cfg.cnn_strides)}

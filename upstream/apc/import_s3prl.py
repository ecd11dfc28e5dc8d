"""s3prl APC / VQ-APC checkpoints -> :class:`~superb.upstream.apc.model.APCUpstream`.

s3prl's ``{'config': {'model': {'paras': {...}}, 'data': {'audio': {...}}}, 'model': state_dict}``
(facts of s3prl's ``upstream/apc`` format). The weight renaming is data: :data:`S3PRL_KEY_MAP`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Tuple

from ..checkpoint_io import safe_load
from ..options import as_bool, config_from_options, to_plain
from ..state_dict import load_strict, map_keys
from .model import APCConfig, APCUpstream

S3PRL_KEY_MAP: Tuple[Tuple[str, str], ...] = (
    (r"rnn_layers\.(\d+)\.(.+)", r"layers.\1.\2"),
    (r"vq_layers\.(\d+)\.vq_logits\.(weight|bias)", r"vq.\1.logits.\2"),
    (r"vq_layers\.(\d+)\.codebook_CxE\.weight", r"vq.\1.codebook.weight"),
)

_AUDIO_OWN_KEYS = ("feat_type", "feat_dim", "decode_wav", "cmvn")


def detect(obj: Any) -> bool:
    """True for s3prl's APC / VQ-APC ``{'config', 'model'}`` file."""
    if not (isinstance(obj, Mapping) and "config" in obj and "model" in obj):
        return False
    cfg = to_plain(obj["config"])
    return (isinstance(cfg, dict) and isinstance(cfg.get("model"), dict) and "paras" in cfg["model"]
            and isinstance(cfg.get("data"), dict) and "audio" in cfg["data"])


def config_from_s3prl(cfg: Mapping[str, Any], where: str) -> APCConfig:
    paras = dict(cfg["model"]["paras"] or {})
    audio = dict(cfg["data"]["audio"] or {})
    for key in ("hidden_size", "num_layers", "residual"):
        if key not in paras:
            raise ValueError(f"{where}: config.model.paras.{key} is missing")
    unknown = sorted(set(paras) - {"hidden_size", "num_layers", "dropout", "residual", "vq"})
    if unknown:
        raise ValueError(f"{where}: config.model.paras has unknown key(s) {unknown}")
    if audio.get("feat_type", "fbank") != "fbank":
        raise ValueError(f"{where}: data.audio.feat_type {audio.get('feat_type')!r} is not supported (only 'fbank')")
    if "feat_dim" not in audio:
        raise ValueError(f"{where}: config.data.audio.feat_dim is missing")
    fixed = sorted(k for k in ("window_type", "num_mel_bins", "sample_frequency") if k in audio)
    if fixed:
        raise ValueError(f"{where}: data.audio sets {fixed}, which APC fixes itself (Hamming window, "
                         "feat_dim mel bins, 16 kHz); s3prl rejects such a file too")
    vq = paras.get("vq") or None
    sizes, dims, temp = (), (), 0.5
    if vq is not None:
        for key in ("codebook_size", "code_dim", "gumbel_temperature"):
            if key not in vq:
                raise ValueError(f"{where}: config.model.paras.vq.{key} is missing")
        sizes, dims = tuple(int(v) for v in vq["codebook_size"]), tuple(int(v) for v in vq["code_dim"])
        temp = float(vq["gumbel_temperature"])
    return APCConfig(
        feat_dim=int(audio["feat_dim"]), hidden_size=int(paras["hidden_size"]), num_layers=int(paras["num_layers"]),
        residual=as_bool(paras["residual"], "model.paras.residual", where), vq_codebook_size=sizes,
        vq_code_dim=dims, vq_gumbel_temperature=temp,
        cmvn=as_bool(audio.get("cmvn", True), "data.audio.cmvn", where),
        kaldi_kwargs={k: v for k, v in audio.items() if k not in _AUDIO_OWN_KEYS})


def load_s3prl(path: Path, obj: Mapping[str, Any], **options) -> APCUpstream:
    cfg = config_from_s3prl(to_plain(obj["config"]), str(path))
    cfg = config_from_options(APCConfig, cfg, options, str(path))
    model = APCUpstream(cfg, str(path))
    state = obj["model"]
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: 'model' is not a state dict ({type(state).__name__})")
    load_strict(model, map_keys(state, S3PRL_KEY_MAP), path)
    model.eval()
    return model


def describe(obj: Any) -> Dict[str, Any]:
    cfg = config_from_s3prl(to_plain(obj["config"]), "checkpoint")
    return {
        "family": "apc",
        "format": "s3prl APC {'config', 'model'}",
        "upstreams": ["vq_apc"] if cfg.vq_code_dim else ["apc"],
        "num_hidden_states": cfg.num_layers,
        "hidden_size": cfg.hidden_size,
        "vq": {"codebook_size": list(cfg.vq_codebook_size), "code_dim": list(cfg.vq_code_dim)} if cfg.vq_code_dim else None,
        "feat_dim": cfg.feat_dim,
    }


FORMATS = ("s3prl .ckpt {'config': {'model': {'paras'}, 'data': {'audio'}}, 'model': state_dict}",)


def load(path: Path, variant=None, **options) -> APCUpstream:
    """Load an APC / VQ-APC file (either name loads either kind; the file decides)."""
    obj = safe_load(path)
    if not detect(obj):
        keys = sorted(map(str, obj)) if isinstance(obj, Mapping) else type(obj).__name__
        raise ValueError(f"{path}: not an s3prl APC/VQ-APC checkpoint (expected 'config' with "
                         f"model.paras and data.audio, and 'model'; found {keys})")
    return load_s3prl(path, obj, **options)

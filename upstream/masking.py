"""Tensor helpers for padded batches with exact lengths: zeroing the padding, masked group
normalisation, per-utterance CMVN, padding a list, repeating frames, computing a padded batch as
length-sorted groups (:func:`forward_in_groups`) and caching weights derived from frozen
parameters (:func:`derived`).

The length mask itself is :func:`superb.upstream.base.valid_mask` (the one mask of
:mod:`superb.upstream`); everything here is batch-invariant: the valid frames of an utterance never
depend on the rest of the batch or on the values of the padding.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

import torch

from .base import valid_mask

__all__ = ["cmvn_unbiased", "derived", "forward_in_groups", "length_groups", "masked_group_norm", "pad_list",
           "repeat_frames", "valid_mask", "zero_padding"]


def zero_padding(x: torch.Tensor, lengths: torch.Tensor, time_dim: int = 1) -> torch.Tensor:
    """Set every position at or beyond ``lengths[b]`` along ``time_dim`` to zero."""
    mask = valid_mask(lengths.to(x.device), x.shape[time_dim])  # [B, T]
    shape = [1] * x.dim()
    shape[0] = x.shape[0]
    shape[time_dim] = x.shape[time_dim]
    return x * mask.view(shape).to(x.dtype)


def masked_group_norm(x: torch.Tensor, lengths: torch.Tensor, num_groups: int,
                      weight: Optional[torch.Tensor], bias: Optional[torch.Tensor],
                      eps: float) -> torch.Tensor:
    """``GroupNorm`` of ``x [B, C, T]`` whose statistics use only the valid frames of each
    utterance (what ``F.group_norm`` gives for the utterance alone). Computed in float32;
    the biased variance, as ``nn.GroupNorm``. Padding frames are normalised with their
    utterance's statistics (finite values; callers that need zeros there zero them).

    The statistics are taken on each utterance's own slice (``torch.var_mean``, no mask
    arithmetic over the padded tensor) and applied as one fused ``x * scale + shift`` pass:
    two reads and one write of ``x`` whatever the padding."""
    B, C, T = x.shape
    dtype = x.dtype
    xf = x.float()
    G = num_groups
    mean = xf.new_zeros(B, G)
    var = xf.new_zeros(B, G)
    for b, n in enumerate(lengths.tolist()):
        n = min(int(n), T)
        if n > 0:  # an empty utterance keeps mean 0, variance 0
            v, m = torch.var_mean(xf[b, :, :n].reshape(G, C // G, n), dim=(1, 2), correction=0)
            var[b], mean[b] = v, m
    scale = torch.rsqrt(var + eps).repeat_interleave(C // G, dim=1)  # [B, C]
    if weight is not None:
        scale = scale * weight.float().view(1, C)
    shift = -mean.repeat_interleave(C // G, dim=1) * scale
    if bias is not None:
        shift = shift + bias.float().view(1, C)
    return torch.addcmul(shift.unsqueeze(-1), xf, scale.unsqueeze(-1)).to(dtype)


def cmvn_unbiased(feats: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Per-utterance CMVN of ``[T, D]`` features: ``(x - mean) / (eps + std)``, unbiased std
    (s3prl's APC / Mockingjay convention)."""
    return (feats - feats.mean(dim=0, keepdim=True)) / (eps + feats.std(dim=0, keepdim=True))


def pad_list(feats: Sequence[torch.Tensor]) -> torch.Tensor:
    """Right-pad a list of ``[T_i, D]`` tensors with zeros to ``[B, max T, D]``."""
    return torch.nn.utils.rnn.pad_sequence(list(feats), batch_first=True)


def repeat_frames(feats: torch.Tensor, lengths: torch.Tensor, factor: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Repeat every frame ``factor`` times along time: ``[B, T, D] -> [B, T * factor, D]``.

    Frame-level tasks whose labels come at a finer rate than the upstream (BEST-RQ emits one
    frame per 40 ms, frame labels are often at 10 or 20 ms) can bring the features to the label
    rate this way: ``factor = upstream_rate // label_rate``; lengths are multiplied likewise
    (trim or pad the last frames to the label count afterwards).
    """
    if factor < 1 or int(factor) != factor:
        raise ValueError(f"repeat_frames needs a positive integer factor, got {factor!r}")
    factor = int(factor)
    if factor == 1:
        return feats, lengths
    return feats.repeat_interleave(factor, dim=1), lengths * factor


# ------------------------------------------------------------------------------------------------
# length-sorted groups: a padded batch computed with (almost) no padding
# ------------------------------------------------------------------------------------------------


def length_groups(lengths: Sequence[int], max_padding: float) -> List[List[int]]:
    """Split a batch into groups of similar length, longest first.

    The rule: utterances are taken longest first (ties in batch order); a group starts with the
    longest utterance not yet placed and takes the next ones while its padded size
    ``len(group) * longest`` stays within ``(1 + max_padding)`` times its valid size
    ``sum(lengths)``. ``max_padding = 0`` groups only equal lengths; a large value gives one
    group (the whole batch). A pure function of the lengths."""
    lens = [int(n) for n in lengths]
    order = sorted(range(len(lens)), key=lambda i: (-lens[i], i))
    groups: List[List[int]] = []
    current: List[int] = []
    longest = total = 0
    for i in order:
        n = lens[i]
        if current and (len(current) + 1) * longest > (1.0 + max_padding) * (total + n):
            groups.append(current)
            current, total = [], 0
        if not current:
            longest = n
        current.append(i)
        total += n
    if current:
        groups.append(current)
    return groups


def forward_in_groups(forward: Callable, wavs: torch.Tensor, wav_lens: torch.Tensor,
                      max_padding: Optional[float]):
    """Run ``forward(wavs, wav_lens) -> UpstreamOutput`` of a **batch-invariant** upstream on the
    length groups of :func:`length_groups` (each cut to its own longest utterance) and re-pad the
    results into one batch, in the original order.

    Batch invariance (an utterance's valid frames do not depend on the rest of the batch, which
    ``tests/test_padding_invariance.py`` checks for every family) makes this exact up to float
    rounding, while the padding that is never computed is no longer paid for: with utterances
    of 2 to 12 s in one batch, nearly half of a padded forward is padding. Padding frames of the
    result are undefined, as the contract says (zeros beyond a group's own frames). ``max_padding=None`` (or a batch that forms one group) calls ``forward`` on
    the batch as given."""
    from .base import UpstreamOutput

    B = wavs.shape[0]
    if max_padding is None or B <= 1:
        return forward(wavs, wav_lens)
    groups = length_groups(wav_lens.tolist(), max_padding)
    if len(groups) == 1:
        return forward(wavs, wav_lens)
    states: List[torch.Tensor] = []
    lengths = torch.zeros(B, dtype=torch.long, device=wav_lens.device)
    for idx in groups:
        n = int(wav_lens[idx[0]])  # the group's longest utterance
        sel = torch.tensor(idx, device=wavs.device)
        out = forward(wavs[:, :n].index_select(0, sel), wav_lens.index_select(0, sel.to(wav_lens.device)))
        lengths[sel.to(lengths.device)] = out.lengths.to(lengths.device)
        if not states:  # the first group holds the longest utterance: its frame count is the batch's
            states = [h.new_zeros((B,) + tuple(h.shape[1:])) for h in out.hidden_states]
        for full, h in zip(states, out.hidden_states):
            t = min(h.shape[1], full.shape[1])
            full[:, :t].index_copy_(0, sel.to(full.device), h[:, :t])
        del out
    return UpstreamOutput(hidden_states=states, lengths=lengths)


# ------------------------------------------------------------------------------------------------
# weights derived from parameters, computed once while the parameters do not change
# ------------------------------------------------------------------------------------------------


def derived(owner: torch.nn.Module, name: str, sources: Sequence[torch.Tensor],
            compute: Callable[[], torch.Tensor]) -> torch.Tensor:
    """``compute()`` (a tensor made from the parameters ``sources``), cached on ``owner``.

    The cache is keyed on every source's identity, storage, device, dtype and in-place version
    counter, so loading a state dict, ``.to(device)``, or any in-place update recomputes it. It
    is bypassed when autograd could need the graph (grad mode on and a source requiring grad)
    and for inference-mode tensors (they carry no version counter)."""
    if torch.is_grad_enabled() and any(s.requires_grad for s in sources):
        return compute()
    try:
        key = tuple((id(s), s.data_ptr(), s.device, s.dtype, s._version) for s in sources)
    except RuntimeError:  # inference tensors: no version counter
        return compute()
    cache = owner.__dict__.setdefault("_derived_cache", {})
    hit = cache.get(name)
    if hit is not None and hit[0] == key:
        return hit[1]
    with torch.inference_mode(False), torch.no_grad():  # a normal tensor, usable outside inference mode
        value = compute()
    cache[name] = (key, value)
    return value

"""Extraction speed of superb's HuBERT Base against its peers, on one set of random weights.

Run: ``python -m superb.benchmark.perf.extraction [--rounds-a 2] [--rounds-b 1] [--threads 2]``.

One random HuBERT Base (s3prl 0.4.18's fairseq-equivalent ``HubertModel``, seeded) is the source
of every implementation: s3prl itself, torchaudio (``import_fairseq_model`` of that model),
transformers (``HubertModel`` given the same tensors under its key names) and superb
(``build_upstream("hubert", ckpt=...)`` of the model written in s3prl's converted format). All
run in one process, interleaved round by round (the order rotates), with ``torch.set_num_threads``
threads, under ``torch.inference_mode``, each returning **all** hidden states:

(a) one padded batch of 8 utterances of 2 to 12 s (random order);
(b) 24 utterances of 1 to 16 s: the peers in batches of 8 in the given order, superb in its own
    duration batches (``superb extract``'s rule: DurationBatchSampler in length order,
    ``--max-seconds`` of padded audio per batch) over the same 24 utterances.

Printed: seconds of audio per second of wall time for each implementation (best and median over
the rounds), superb's ratio to the fastest peer, and the largest |superb - torchaudio| over every
hidden state and valid frame (torchaudio run on each utterance alone, the golden tests' rule).
Needs s3prl (``--no-deps``), omegaconf, torchaudio and transformers (``tests/requirements-peers*.txt``).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

import torch

SR = 16000


# ------------------------------------------------------------------------------------------------
# one set of weights, four implementations
# ------------------------------------------------------------------------------------------------


def build_reference(seed: int = 0):
    """s3prl's (fairseq-equivalent) HuBERT Base with random weights, in eval mode."""
    from s3prl.upstream.hubert.hubert_model import HubertConfig, HubertModel, HubertPretrainingConfig

    torch.manual_seed(seed)
    cfg = HubertConfig(label_rate=50, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
                       encoder_layerdrop=0.0, dropout_input=0.0, dropout_features=0.0)
    model = HubertModel(cfg, HubertPretrainingConfig(label_rate=50, normalize=False),
                        [["<s>", "<pad>", "</s>", "<unk>", "0", "1"]])
    return model.eval(), cfg


def write_s3prl_converted(model, cfg, path: Path) -> Path:
    """s3prl's converted checkpoint layout: ``task_cfg``, ``model_cfg``, ``model_weight``."""
    import dataclasses

    model_cfg = {"_name": "hubert", **{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}}
    task = {"_name": "hubert_pretraining", "data": "/data", "normalize": False, "sample_rate": SR,
            "label_rate": 50.0, "labels": ["km"]}
    torch.save({"task_cfg": task, "model_cfg": model_cfg, "model_weight": model.state_dict(),
                "dictionaries_symbols": [["<s>", "<pad>", "</s>", "<unk>", "0", "1"]]}, path)
    return path


#: fairseq -> transformers key names (HuBERT Base; the reference sheet's map)
_HF_RENAMES = [
    ("feature_extractor.conv_layers.0.2.", "feature_extractor.conv_layers.0.layer_norm."),
    ("post_extract_proj.", "feature_projection.projection."),
    ("encoder.pos_conv.0.weight_g", "encoder.pos_conv_embed.conv.parametrizations.weight.original0"),
    ("encoder.pos_conv.0.weight_v", "encoder.pos_conv_embed.conv.parametrizations.weight.original1"),
    ("encoder.pos_conv.0.bias", "encoder.pos_conv_embed.conv.bias"),
    (".self_attn_layer_norm.", ".layer_norm."),
    (".self_attn.", ".attention."),
    (".fc1.", ".feed_forward.intermediate_dense."),
    (".fc2.", ".feed_forward.output_dense."),
]


def build_transformers(state: Dict[str, torch.Tensor]):
    import transformers

    cfg = transformers.HubertConfig(hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
                                    feat_proj_dropout=0.0, layerdrop=0.0, mask_time_prob=0.0)
    model = transformers.HubertModel(cfg).eval()
    mapped = {}
    for key, value in state.items():
        if key.startswith(("label_embs_concat", "final_proj", "mask_emb")):
            continue
        new = key
        if key.startswith("layer_norm."):
            new = "feature_projection." + key
        for a, b in _HF_RENAMES:
            new = new.replace(a, b)
        if new.startswith("feature_extractor.conv_layers.") and new.endswith(".0.weight"):
            new = new[: -len(".0.weight")] + ".conv.weight"
        mapped[new] = value
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    missing = [k for k in missing if k != "masked_spec_embed"]
    if missing or unexpected:
        raise RuntimeError(f"transformers key map: missing {missing}, unexpected {unexpected}")
    return model


# ------------------------------------------------------------------------------------------------
# all hidden states of each implementation
# ------------------------------------------------------------------------------------------------


def runners(ref, ta, hf, ours) -> Dict[str, Callable[[torch.Tensor, torch.Tensor], List[torch.Tensor]]]:
    def run_s3prl(wavs, lens):
        mask = torch.arange(wavs.shape[1])[None, :] >= lens[:, None]
        states: List[torch.Tensor] = []
        hooks = [layer.register_forward_pre_hook(lambda m, inp: states.append(inp[0].transpose(0, 1)))
                 for layer in ref.encoder.layers]
        hooks.append(ref.encoder.register_forward_hook(lambda m, inp, out: states.append(out[0])))
        try:
            ref.extract_features(wavs, padding_mask=mask, mask=False)
        finally:
            for h in hooks:
                h.remove()
        return states

    def run_torchaudio(wavs, lens):
        first: List[torch.Tensor] = []
        hook = ta.encoder.transformer.layers[0].register_forward_pre_hook(lambda m, inp: first.append(inp[0]))
        try:
            feats, _ = ta.extract_features(wavs, lens)
        finally:
            hook.remove()
        return first + list(feats)  # HuBERT Base is post-LN: the last layer's output is the last state

    def run_transformers(wavs, lens):
        mask = (torch.arange(wavs.shape[1])[None, :] < lens[:, None]).long()
        return list(hf(wavs, attention_mask=mask, output_hidden_states=True).hidden_states)

    def run_superb(wavs, lens):
        return ours(wavs, lens).hidden_states

    return {"s3prl": run_s3prl, "torchaudio": run_torchaudio, "transformers": run_transformers,
            "superb": run_superb}


# ------------------------------------------------------------------------------------------------
# workloads
# ------------------------------------------------------------------------------------------------


def utterances(n: int, lo_s: float, hi_s: float, seed: int) -> List[torch.Tensor]:
    """``n`` noise-like utterances with lengths spread evenly over [lo_s, hi_s] s, shuffled."""
    g = torch.Generator().manual_seed(seed)
    lens = [int(round((lo_s + (hi_s - lo_s) * i / max(n - 1, 1)) * SR)) + 37 for i in range(n)]
    order = torch.randperm(n, generator=g).tolist()
    return [torch.randn(lens[i], generator=g) * 0.1 for i in order]


def pad(wavs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    return torch.nn.utils.rnn.pad_sequence(list(wavs), batch_first=True), torch.tensor([len(w) for w in wavs])


def fixed_batches(wavs: Sequence[torch.Tensor], size: int) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    return [pad(wavs[i:i + size]) for i in range(0, len(wavs), size)]


def duration_batches(wavs: Sequence[torch.Tensor], max_seconds: float) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    from superb.benchmark.extract import duration_batches as batches

    return [pad([wavs[i] for i in b]) for b in batches([len(w) for w in wavs], max_seconds)]


def timed(fn, batches) -> float:
    start = time.perf_counter()
    for wavs, lens in batches:
        states = fn(wavs, lens)
        del states
    return time.perf_counter() - start


def max_diff_vs(reference_fn, ours, wavs: Sequence[torch.Tensor]) -> float:
    """Largest |superb(padded batch) - reference(each utterance alone)| over every state and valid frame."""
    padded, lens = pad(wavs)
    out = ours(padded, lens)
    worst = 0.0
    for i, w in enumerate(wavs):
        ref = reference_fn(w[None], torch.tensor([len(w)]))
        t = int(out.lengths[i])
        assert len(ref) == len(out.hidden_states) and ref[-1].shape[1] == t, "layer or frame count differs"
        for a, b in zip(out.hidden_states, ref):
            worst = max(worst, float((a[i, :t] - b[0, :t]).abs().max()))
    return worst


def report(title: str, audio_s: float, times: Dict[str, List[float]]) -> Dict[str, float]:
    print(f"\n{title}  ({audio_s:.1f} s of audio)")
    print("| implementation | audio s/s (best) | audio s/s (median) | rounds |")
    print("|---|---|---|---|")
    best = {}
    for name, ts in times.items():
        best[name] = audio_s / min(ts)
        print(f"| {name} | {best[name]:.2f} | {audio_s / statistics.median(ts):.2f} | {len(ts)} |")
    peers = {k: v for k, v in best.items() if k != "superb"}
    fastest = max(peers, key=peers.get)
    med = {k: audio_s / statistics.median(v) for k, v in times.items()}
    fastest_med = max((k for k in med if k != "superb"), key=med.get)
    print(f"superb / fastest peer ({fastest}): {best['superb'] / peers[fastest]:.2f}x (best); "
          f"{med['superb'] / med[fastest_med]:.2f}x (median, vs {fastest_med})")
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds-a", type=int, default=2, help="timed rounds of workload (a) (0: skip it)")
    ap.add_argument("--rounds-b", type=int, default=1, help="timed rounds of workload (b) (0: skip it)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-seconds", type=float, default=None,
                    help="superb's duration-batch budget in (b) (default: superb extract's)")
    ap.add_argument("--peers", default="s3prl,torchaudio,transformers", help="comma-separated peers to run")
    ap.add_argument("--group-padding", type=float, default=None,
                    help="override superb's length-group padding (negative: compute batches as given)")
    ap.add_argument("--skip-diff", action="store_true", help="do not compare superb with torchaudio")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from torchaudio.models.wav2vec2.utils import import_fairseq_model

    from superb.benchmark.extract import DEFAULT_MAX_SECONDS
    from superb.upstream import build_upstream

    max_seconds = DEFAULT_MAX_SECONDS if args.max_seconds is None else args.max_seconds
    ref, cfg = build_reference()
    ta = import_fairseq_model(ref).eval()
    hf = build_transformers(ref.state_dict())
    with tempfile.TemporaryDirectory() as tmp:
        ours = build_upstream("hubert", ckpt=write_s3prl_converted(ref, cfg, Path(tmp) / "hubert_base.pt"))
    if args.group_padding is not None:
        ours.group_padding = None if args.group_padding < 0 else args.group_padding
    fns = runners(ref, ta, hf, ours)
    names = [p for p in args.peers.split(",") if p] + ["superb"]
    fns = {n: fns[n] for n in names}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; superb group_padding="
          f"{ours.group_padding}; (b) budget {max_seconds:g} s")

    set_a = utterances(8, 2.0, 12.0, seed=1)
    set_b = utterances(24, 1.0, 16.0, seed=2)
    work_a = {n: [pad(set_a)] for n in names}
    work_b = {n: fixed_batches(set_b, 8) for n in names}
    work_b["superb"] = duration_batches(set_b, max_seconds)

    with torch.inference_mode():
        warm = pad([set_a[0][:SR]])
        for n in names:
            fns[n](*warm)
        diff = float("nan")
        if "torchaudio" in fns and not args.skip_diff:
            diff = max_diff_vs(fns["torchaudio"], ours, set_a)
        results = {}
        for label, work, rounds, wavs in (("(a) one padded batch of 8 utterances, 2-12 s", work_a, args.rounds_a, set_a),
                                          ("(b) 24 utterances, 1-16 s", work_b, args.rounds_b, set_b)):
            if rounds <= 0:
                continue
            times: Dict[str, List[float]] = {n: [] for n in names}
            for r in range(rounds):
                order = names[r % len(names):] + names[: r % len(names)]
                for n in order:
                    times[n].append(timed(fns[n], work[n]))
                    print(f"  round {r + 1} {n}: {times[n][-1]:.1f} s", flush=True)
            results[label] = report(label, sum(len(w) for w in wavs) / SR, times)
    print(f"\nmax |superb - torchaudio| over all {ours.num_layers} hidden states, valid frames "
          f"(superb: padded batch (a); torchaudio: each utterance alone): {diff:.2e}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

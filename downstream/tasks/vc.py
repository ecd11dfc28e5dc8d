"""VC -- any-to-one voice conversion, VCC2020 task 1 layout (SUPERB-SG synthesis task).

Layout (``--data`` points at the ``vcc2020`` folder; the official audio is 24 kHz and superb does
not resample behind the user's back: convert it once to 16 kHz mono)::

    vcc2020/<SPK>/E<number>.wav          SEF1 SEF2 SEM1 SEM2 (sources), TEF1 TEF2 TEM1 TEM2 (targets)
    vcc2020/prompts/Eng_transcriptions.txt   "<number without E> <sentence>" per line (for WER)

Training data: the target speaker's (``task.target_speaker``) training utterances (names starting
with ``task.train_prefix``, ``E1``); the last ``task.dev_utterances`` of them in name order are
dev (s3prl ships its own train/dev lists; this split rule is ours). The model learns to rebuild
the target's log-mel spectrogram from the upstream features of the target's own speech
(autoencoding, as s3prl's any-to-one recipe). Test: every evaluation utterance
(``task.eval_prefix``, ``E3``) of every source speaker, converted to the target; the target's
recording of the same sentence (``vcc2020/<target>/E3xxxx.wav``, VCC2020's released ground truth)
is the reference. A missing reference is an error naming the file.

Head (s3prl v0.4.18 ``a2o-vc-vcc2020`` ``config_taco2_ar.yaml`` / ``model.py``, facts only): the
weighted features are resampled to the mel frame rate (mel frame ``j`` takes upstream frame
``round(j * n_shift / downsample_rate)``, clamped to the last valid one -- the ``repeat`` rule of
:func:`superb.downstream.signals.align_frames`), then a Tacotron-2 encoder (linear 512 -> 3 x [conv 5, 512
channels, batch norm, ReLU, dropout 0.5] -> BiLSTM, ``hidden_dim`` 1024 in total) and an
autoregressive decoder **without attention**: the previous (normalised) mel frame goes through a
2-layer prenet (256, ReLU, dropout 0.5 kept on at inference, Tacotron 2), is concatenated with
the encoder state of the current frame, and feeds 2 LSTM layers of 1024 (dropout 0.2, each
followed by a tanh projection) and a linear layer to 80 mel bins. Targets are normalised with the
mean/std of the training mels. Loss: L1 in the normalised space over valid frames; training is
teacher-forced. Deviation: s3prl's LSTMP cells feed their projection back into the recurrence;
here the projection is applied to each layer's output only, so teacher-forced training runs whole
sequences through ``nn.LSTM``. At inference the prenet's dropout masks come from a generator
seeded per utterance, so evaluating a checkpoint twice gives the same audio.

Acoustic features (s3prl's ``fbank_config``, at 16 kHz): 80-bin log10 mel of the STFT magnitude,
``n_fft`` 1024, hop 256, Hann window of 1024, fmin 80 Hz (Slaney mel filters), floor 1e-10; fmax
is 8 kHz, the Nyquist frequency (s3prl's 7600 Hz was chosen for 24 kHz audio and a neural vocoder;
with Griffin-Lim at 16 kHz an empty 7.6-8 kHz band alone costs ~1.7 dB MCD: resynthesising the
natural target mel of a mini-corpus sentence gave 8.5 dB with 7600 Hz, 6.8 dB with 8000 Hz). Waveforms: Griffin-Lim (64 iterations, fixed random initialisation) on the
pseudo-inverse of the mel filters, offline. ``task.vocoder`` may instead name a neural vocoder
factory ``"package.module:function"``: ``function(mel_config: dict)`` returns a callable mapping
a ``[frames, 80]`` log10-mel array to a 16 kHz float waveform.

Metrics: MCD in dB with DTW (:func:`superb.downstream.metrics.mel_cepstral.mcd`: WORLD + SPTK mel-cepstra,
order 39, alpha 0.41 at 16 kHz, 5 ms shift, -20 dB power VAD; c0 included as s3prl does,
``task.mcd.include_c0``), primary, lower is better; on test also ``mcd_source``, the MCD of the
unconverted source recording against the same reference (the "copy the source" baseline). With
``task.asr_model`` (``"module:factory"``; ``factory()`` returns an object with
``transcribe(wav, sample_rate) -> str``) the converted test speech is transcribed and scored
against the prompts (``wer``, ``cer`` in %, after upper-casing and removing punctuation, as
s3prl). With ``task.asv_model`` (``factory()`` returns an object with ``embed(wav, sample_rate)
-> 1-D array``) ``accept`` is the % of conversions whose cosine similarity to the target's
reference exceeds the threshold: ``task.asv_threshold``, else the equal-error-rate threshold of
same- vs different-speaker pairs among the natural test recordings of all speakers (s3prl's
recipe). Without a model these metrics are skipped; the reason is logged and written to
``results.json`` (``data.notes``).

Outputs in ``predictions/<split>/``: ``utterances.tsv`` (per-utterance MCD, ...), ``metrics.txt``,
and for the first ``task.num_examples`` utterances ``examples/<id>_{source,converted,target}.wav``
and ``<id>.png`` (their spectrograms).
"""
from __future__ import annotations

import importlib
import logging
import string
import zlib
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from superb.upstream.base import valid_mask

from .. import metrics as M
from ..audio import SAMPLE_RATE, load_audio
from ..corpora.vcc2020 import find_vcc2020_root, prepare_vcc2020, read_prompts, speaker_files
from ..signals import align_frames, read_reference, write_listening_example
from .base import Example, Task, write_lines
from .declaration import HIGHER, LOWER, Metric, PERCENT

log = logging.getLogger("superb.vc")


# --------------------------------------------------------------------------------------------
# acoustic features and vocoders
# --------------------------------------------------------------------------------------------
class MelConfig:
    def __init__(self, n_mels=80, n_fft=1024, hop=256, win_length=1024, fmin=80.0, fmax=8000.0, gl_iters=64):
        self.n_mels, self.n_fft, self.hop = int(n_mels), int(n_fft), int(hop)
        self.win_length = int(win_length or n_fft)
        self.fmin, self.fmax, self.gl_iters = float(fmin), float(fmax), int(gl_iters)
        import librosa

        self.basis = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=self.n_fft, n_mels=self.n_mels, fmin=self.fmin,
                                         fmax=self.fmax).astype(np.float32)  # [n_mels, F]

    def as_dict(self) -> Dict[str, Any]:
        return {"sample_rate": SAMPLE_RATE, "n_mels": self.n_mels, "n_fft": self.n_fft, "hop": self.hop,
                "win_length": self.win_length, "fmin": self.fmin, "fmax": self.fmax}

    def frames(self, num_samples: int) -> int:
        return 1 + num_samples // self.hop

    def logmel(self, wav: np.ndarray) -> np.ndarray:
        """``[frames(len), n_mels]`` log10 mel spectrogram of a 16 kHz waveform."""
        x = torch.from_numpy(np.asarray(wav, dtype=np.float32))
        spec = torch.stft(x, self.n_fft, self.hop, self.win_length, torch.hann_window(self.win_length), center=True,
                          pad_mode="reflect", return_complex=True).abs().numpy()  # [F, T]
        return np.log10(np.maximum(1e-10, self.basis @ spec)).T.astype(np.float32)


class GriffinLim:
    """log10-mel -> waveform: pseudo-inverse of the mel filters, then Griffin-Lim."""

    def __init__(self, mel: MelConfig):
        self.mel = mel
        self.inverse = np.linalg.pinv(mel.basis)

    def __call__(self, logmel: np.ndarray) -> np.ndarray:
        import librosa

        spec = np.maximum(1e-10, self.inverse @ (10.0 ** np.asarray(logmel, dtype=np.float64).T))
        wav = librosa.griffinlim(spec, n_iter=self.mel.gl_iters, hop_length=self.mel.hop,
                                 win_length=self.mel.win_length, n_fft=self.mel.n_fft, window="hann", center=True,
                                 random_state=0)
        return wav.astype(np.float32)


def load_factory(spec: str, key: str) -> Callable:
    """Import ``"package.module:function"`` (a user hook named in the config)."""
    module, sep, attr = str(spec).partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"task.{key}={spec!r}: expected 'package.module:function'")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"task.{key}={spec!r}: cannot import it ({exc})") from exc
    if not callable(obj):
        raise ValueError(f"task.{key}={spec!r} is not callable")
    return obj


def build_vocoder(spec: Optional[str], mel: MelConfig) -> Callable[[np.ndarray], np.ndarray]:
    if spec in (None, "", "griffin_lim"):
        return GriffinLim(mel)
    return load_factory(spec, "vocoder")(mel.as_dict())


# --------------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------------
class Prenet(nn.Module):
    """Linear+ReLU layers with dropout that stays on at inference (Tacotron 2)."""

    def __init__(self, idim: int, layers: int, units: int, dropout: float):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(idim if i == 0 else units, units) for i in range(layers)])
        self.p = float(dropout)
        self.out_dim = units if layers else idim

    def forward(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        for layer in (self.layers or [None]):
            if layer is not None:
                x = torch.relu(layer(x))
            if self.p > 0:
                if generator is None:
                    x = F.dropout(x, self.p, training=True)
                else:
                    keep = torch.rand(x.shape, generator=generator, device="cpu").to(x.device) >= self.p
                    x = x * keep.to(x.dtype) / (1.0 - self.p)
        return x


class Taco2AR(nn.Module):
    """Tacotron-2 encoder + attention-free autoregressive LSTM decoder over aligned features."""

    def __init__(self, input_dim: int, n_mels: int, mean: np.ndarray, std: np.ndarray, conv_channels: int = 512,
                 conv_layers: int = 3, conv_kernel: int = 5, encoder_dropout: float = 0.5, hidden_dim: int = 1024,
                 prenet_layers: int = 2, prenet_dim: int = 256, prenet_dropout: float = 0.5, decoder_layers: int = 2,
                 decoder_dropout: float = 0.2):
        super().__init__()
        self.n_mels = n_mels
        self.register_buffer("mel_mean", torch.as_tensor(mean, dtype=torch.float32).clone())
        self.register_buffer("mel_std", torch.as_tensor(std, dtype=torch.float32).clone())
        self.input_layer = nn.Linear(input_dim, conv_channels)
        self.convs = nn.ModuleList([
            nn.Sequential(nn.Conv1d(conv_channels, conv_channels, conv_kernel, padding=(conv_kernel - 1) // 2, bias=False),
                          nn.BatchNorm1d(conv_channels), nn.ReLU(), nn.Dropout(encoder_dropout))
            for _ in range(conv_layers)])
        self.blstm = nn.LSTM(conv_channels, hidden_dim // 2, batch_first=True, bidirectional=True)
        self.prenet = Prenet(n_mels, prenet_layers, prenet_dim, prenet_dropout)
        self.decoder = nn.ModuleList()
        self.projections = nn.ModuleList()
        for i in range(decoder_layers):
            self.decoder.append(nn.LSTM(hidden_dim + self.prenet.out_dim if i == 0 else hidden_dim, hidden_dim,
                                        batch_first=True))
            self.projections.append(nn.Linear(hidden_dim, hidden_dim))
        self.decoder_dropout = nn.Dropout(decoder_dropout)
        self.output = nn.Linear(hidden_dim, n_mels)

    def normalize(self, mel: torch.Tensor) -> torch.Tensor:
        return (mel - self.mel_mean) / self.mel_std

    def denormalize(self, mel: torch.Tensor) -> torch.Tensor:
        return mel * self.mel_std + self.mel_mean

    def encode(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        valid = valid_mask(lengths.to(feats.device), feats.shape[1]).unsqueeze(-1)
        x = self.input_layer(feats) * valid
        x = x.transpose(1, 2)
        for conv in self.convs:
            x = conv(x)
        x = x.transpose(1, 2) * valid
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.blstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=feats.shape[1])
        return out

    def _decoder_layer(self, i: int, x: torch.Tensor, state=None):
        out, state = self.decoder[i](x, state)
        return torch.tanh(self.projections[i](self.decoder_dropout(out))), state

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor, targets_norm: torch.Tensor) -> torch.Tensor:
        """Teacher-forced prediction (normalised space) ``[B, T, n_mels]``."""
        enc = self.encode(feats, lengths)
        prev = torch.cat([torch.zeros_like(targets_norm[:, :1]), targets_norm[:, :-1]], dim=1)
        x = torch.cat([enc, self.prenet(prev)], dim=-1)
        for i in range(len(self.decoder)):
            x, _ = self._decoder_layer(i, x)
        return self.output(x)

    @torch.no_grad()
    def infer(self, feats: torch.Tensor, lengths: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        """Autoregressive prediction (normalised space) ``[B, T, n_mels]``; one generator per
        utterance for the prenet dropout (batched utterances use the first's)."""
        enc = self.encode(feats, lengths)
        gen = torch.Generator().manual_seed(int(seeds[0]))
        prev = enc.new_zeros(enc.shape[0], 1, self.n_mels)
        states: List = [None] * len(self.decoder)
        outs = []
        for t in range(enc.shape[1]):
            x = torch.cat([enc[:, t:t + 1], self.prenet(prev, gen)], dim=-1)
            for i in range(len(self.decoder)):
                x, states[i] = self._decoder_layer(i, x, states[i])
            prev = self.output(x)
            outs.append(prev)
        return torch.cat(outs, dim=1)


def normalize_sentence(text: str) -> str:
    """Upper case, punctuation removed, whitespace collapsed (s3prl's VC ASR scoring)."""
    text = text.upper().translate(str.maketrans("", "", string.punctuation))
    return " ".join(text.split())


class VoiceConversion(Task):
    name = "vc"
    title = "Voice conversion (any-to-one)"
    category = "synthesis"
    dataset = "VCC2020 task 1 (intra-lingual), any-to-one, 16 kHz copy"
    metrics = {"mcd": Metric(LOWER, "MCD dB"), "mcd_source": Metric(LOWER, "MCD dB", internal=True),
               "wer": Metric(LOWER, PERCENT), "cer": Metric(LOWER, PERCENT), "accept": Metric(HIGHER, PERCENT)}
    primary_metric = "mcd"
    mini_split = "vcc2020"
    data_help = "the vcc2020 folder (speaker folders SEF1 ... TEM2 with E*.wav, prompts/)"

    def __init__(self, cfg, context=None):
        super().__init__(cfg, context)
        M.require("pyworld", "MCD (voice conversion)")
        M.require("pysptk", "MCD (voice conversion)")
        m = self.cfg["mel"]
        self.mel = MelConfig(m["n_mels"], m["n_fft"], m["hop"], m["win_length"], m["fmin"], m["fmax"], m["gl_iters"])
        self.vocoder = build_vocoder(self.cfg.get("vocoder"), self.mel)
        mc = self.cfg["mcd"]
        self.mcd_args = dict(f0_floor=float(mc["f0_floor"]), f0_ceil=float(mc["f0_ceil"]),
                             f0_method=str(mc["f0_method"]), include_c0=bool(mc["include_c0"]))
        self._mels: Dict[str, np.ndarray] = {}
        self._ref_mcep: Dict[str, np.ndarray] = {}
        self._source_mcd: Dict[str, float] = {}
        self._keep: set = set()
        self._test_ids: set = set()
        self.asr = self.asv = None
        self.prompts: Dict[str, str] = {}
        self.data_notes = {}
        self._asv_cache: Dict[str, np.ndarray] = {}
        self._asv_threshold: Optional[float] = None

    # -- data -----------------------------------------------------------------------------------
    def prepare(self, data_dir) -> Dict[str, List[Example]]:
        if data_dir is None:
            raise ValueError("VC needs --data pointing at the vcc2020 folder")
        c = self.cfg
        root = find_vcc2020_root(Path(data_dir))
        splits = prepare_vcc2020(root, str(c["target_speaker"]), c["source_speakers"], str(c["train_prefix"]),
                                 str(c["eval_prefix"]), int(c["dev_utterances"]), self.min_samples)
        n_keep = int(c.get("num_examples", 3))
        self._keep = {e.id for k in ("dev", "test") for e in sorted(splits[k], key=lambda e: e.id)[:n_keep]}
        self._test_ids = {e.id for e in splits["test"]}
        self._setup_judges(root, splits["test"])
        self._train = splits["train"]
        return splits

    def _setup_judges(self, root: Path, test: List[Example]) -> None:
        c = self.cfg
        notes = {}
        if c.get("asr_model"):
            prompts = root / "prompts" / "Eng_transcriptions.txt"
            if not prompts.is_file():
                raise FileNotFoundError(f"task.asr_model is set but the transcriptions {prompts} are missing")
            self.prompts = read_prompts(prompts)
            missing = sorted({e.label["sentence"] for e in test} - set(self.prompts))
            if missing:
                raise ValueError(f"{prompts}: no transcription for {', '.join(missing[:5])}")
            self.asr = load_factory(c["asr_model"], "asr_model")()
        else:
            notes["wer"] = "skipped: no ASR model (set task.asr_model to 'module:factory')"
        if c.get("asv_model"):
            self.asv = load_factory(c["asv_model"], "asv_model")()
            self._asv_natural = [(spk, p) for spk in list(c["source_speakers"]) + [str(c["target_speaker"])]
                                 for p in speaker_files(root, str(spk), str(c["eval_prefix"])).values()]
        else:
            notes["accept"] = "skipped: no ASV model (set task.asv_model to 'module:factory')"
        for k, why in notes.items():
            log.warning("VC %s %s", k, why)
        self.data_notes = {"vc_metrics": notes} if notes else {}

    def _logmel(self, path: str) -> np.ndarray:
        if path not in self._mels:
            self._mels[path] = self.mel.logmel(read_reference(path, "VC audio"))
        return self._mels[path]

    # -- model ----------------------------------------------------------------------------------
    def build_head(self, input_dim, downsample_rate):
        self.rate = int(downsample_rate)
        frames = np.concatenate([self._logmel(e.audio.path) for e in self._train], axis=0)
        mean, std = frames.mean(0), np.maximum(frames.std(0), 1e-3)
        h = self.cfg["model"]
        return Taco2AR(input_dim, self.mel.n_mels, mean, std, conv_channels=int(h["conv_channels"]),
                       conv_layers=int(h["conv_layers"]), conv_kernel=int(h["conv_kernel"]),
                       encoder_dropout=float(h["encoder_dropout"]), hidden_dim=int(h["hidden_dim"]),
                       prenet_layers=int(h["prenet_layers"]), prenet_dim=int(h["prenet_dim"]),
                       prenet_dropout=float(h["prenet_dropout"]), decoder_layers=int(h["decoder_layers"]),
                       decoder_dropout=float(h["decoder_dropout"]))

    def _aligned(self, feats, lengths, examples):
        frames = torch.tensor([self.mel.frames(e.audio.num_samples) for e in examples], device=feats.device)
        aligned = align_frames(feats.float(), lengths, self.rate, self.mel.hop, int(frames.max()), "repeat")
        return aligned, frames

    def loss(self, head, feats, lengths, examples):
        with torch.autocast(feats.device.type, enabled=False):
            aligned, frames = self._aligned(feats, lengths, examples)
            t = aligned.shape[1]
            target = torch.zeros(len(examples), t, self.mel.n_mels, device=feats.device)
            for i, e in enumerate(examples):
                mel = self._logmel(e.label["reference"])
                if len(mel) != int(frames[i]):
                    raise ValueError(f"{e.label['reference']}: {len(mel)} mel frames for {int(frames[i])} input frames; "
                                     "training pairs must be the same recording")
                target[i, :len(mel)] = torch.from_numpy(mel)
            norm = head.normalize(target)
            pred = head(aligned, frames, norm)
            valid = valid_mask(frames.to(feats.device), t).unsqueeze(-1).float()
            return (torch.abs(pred - norm) * valid).sum() / (valid.sum() * self.mel.n_mels)

    def predict(self, head, feats, lengths, examples):
        out = []
        with torch.autocast(feats.device.type, enabled=False):
            aligned, frames = self._aligned(feats, lengths, examples)
            for i, e in enumerate(examples):  # one utterance at a time: exact lengths, own dropout seed
                n = int(frames[i])
                seed = zlib.crc32(e.id.encode())
                norm = head.infer(aligned[i:i + 1, :n], frames[i:i + 1], [seed])
                mel = head.denormalize(norm)[0].cpu().numpy()
                out.append(self._score_utterance(e, mel))
        return out

    def _score_utterance(self, e: Example, mel: np.ndarray) -> Dict[str, Any]:
        wav = np.asarray(self.vocoder(mel), dtype=np.float32)
        peak = float(np.max(np.abs(wav))) if len(wav) else 0.0
        if not np.isfinite(peak):
            raise FloatingPointError(f"the vocoder returned non-finite samples for {e.id}")
        ref_path = e.label["reference"]
        if ref_path not in self._ref_mcep:
            self._ref_mcep[ref_path] = M.world_mcep(read_reference(ref_path, "VC reference"), SAMPLE_RATE,
                                                    self.mcd_args["f0_floor"], self.mcd_args["f0_ceil"],
                                                    self.mcd_args["f0_method"])
        ref_mcep = self._ref_mcep[ref_path]
        rec: Dict[str, Any] = {"id": e.id, "sentence": e.label["sentence"], "source": e.label["source"]}
        rec["mcd"] = M.mcd_dtw(M.world_mcep(wav, SAMPLE_RATE, self.mcd_args["f0_floor"], self.mcd_args["f0_ceil"],
                                            self.mcd_args["f0_method"]), ref_mcep, self.mcd_args["include_c0"])
        if e.id in self._test_ids:
            if e.id not in self._source_mcd:
                src = load_audio(e.audio)
                self._source_mcd[e.id] = M.mcd_dtw(M.world_mcep(src, SAMPLE_RATE, self.mcd_args["f0_floor"],
                                                                self.mcd_args["f0_ceil"], self.mcd_args["f0_method"]),
                                                   ref_mcep, self.mcd_args["include_c0"])
            rec["mcd_source"] = self._source_mcd[e.id]
            if self.asr is not None:
                rec["hyp"] = str(self.asr.transcribe(wav, SAMPLE_RATE))
                rec["ref"] = self.prompts[e.label["sentence"]]
            if self.asv is not None:
                rec["asv_cos"] = self._cosine(self._embed_array(wav), self._embed_path(ref_path))
        if e.id in self._keep:
            rec["audio"] = {"mix": load_audio(e.audio), "estimates": [wav], "references": [read_reference(ref_path, "VC reference")]}
        return rec

    # -- ASV helpers ----------------------------------------------------------------------------
    def _embed_array(self, wav: np.ndarray) -> np.ndarray:
        v = np.asarray(self.asv.embed(wav, SAMPLE_RATE), dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(v)) or not np.any(v):
            raise ValueError("task.asv_model returned a zero or non-finite embedding")
        return v

    def _embed_path(self, path: str) -> np.ndarray:
        if path not in self._asv_cache:
            self._asv_cache[path] = self._embed_array(read_reference(path, "VC audio"))
        return self._asv_cache[path]

    @staticmethod
    def _cosine(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))

    def asv_threshold(self) -> float:
        if self.cfg.get("asv_threshold") is not None:
            return float(self.cfg["asv_threshold"])
        if self._asv_threshold is None:
            embs = [(spk, self._embed_path(str(p))) for spk, p in self._asv_natural]
            scores, labels = [], []
            for (sa, ea), (sb, eb) in ((x, y) for i, x in enumerate(embs) for y in embs[i + 1:]):
                scores.append(self._cosine(ea, eb))
                labels.append(1.0 if sa == sb else 0.0)
            if not any(labels) or all(labels):
                raise ValueError("the ASV threshold needs natural test recordings of at least two speakers, two of "
                                 "one speaker; set task.asv_threshold instead")
            self._asv_threshold = M.eer_threshold(np.array(scores), np.array(labels))
        return self._asv_threshold

    # -- scoring --------------------------------------------------------------------------------
    def score(self, examples, predictions):
        if len(predictions) != len(examples) or any(p is None for p in predictions):
            raise ValueError("every example needs a prediction")
        out = {"mcd": float(np.mean([p["mcd"] for p in predictions]))}
        if all("mcd_source" in p for p in predictions):
            out["mcd_source"] = float(np.mean([p["mcd_source"] for p in predictions]))
        if all("hyp" in p for p in predictions):
            refs = [normalize_sentence(p["ref"]) for p in predictions]
            hyps = [normalize_sentence(p["hyp"]) for p in predictions]
            out["wer"] = 100.0 * M.wer(refs, hyps)
            out["cer"] = 100.0 * M.cer(refs, hyps)
        if all("asv_cos" in p for p in predictions):
            thr = self.asv_threshold()
            out["accept"] = 100.0 * float(np.mean([p["asv_cos"] > thr for p in predictions]))
        return out

    def write_predictions(self, out_dir, split, examples, predictions):
        d = Path(out_dir) / split
        metrics = self.score(examples, predictions)
        files = [write_lines(d / "metrics.txt", [f"{k} {v:.6f}" for k, v in metrics.items()])]
        cols = [c for c in ("mcd", "mcd_source", "asv_cos") if all(c in p for p in predictions)]
        rows = ["id\tsource\tsentence\t" + "\t".join(cols) + ("\thyp" if all("hyp" in p for p in predictions) else "")]
        for p in sorted(predictions, key=lambda p: p["id"]):
            rows.append(f"{p['id']}\t{p['source']}\t{p['sentence']}\t" + "\t".join(f"{p[c]:.4f}" for c in cols)
                        + (f"\t{p['hyp']}" if "hyp" in p else ""))
        files.append(write_lines(d / "utterances.tsv", rows))
        for p in sorted(predictions, key=lambda p: p["id"]):
            if "audio" in p:
                files += write_listening_example(d / "examples", p["id"], p["audio"], ("source", "converted", "target"))
        return files

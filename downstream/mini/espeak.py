"""eSpeak NG speech synthesis through ``espeakng-loader`` and ctypes.

eSpeak NG (GPL-3.0-or-later) is used as a *runtime* dependency only: the shared library and its
data come from the ``espeakng-loader`` wheel; nothing of it is copied into this repository.  The
audio it generates is not covered by the GPL.

What this module provides
-------------------------
* :class:`Engine` -- a wrapper around the library running from a *private* minimal copy of the
  English data folder (``phondata phonindex phontab intonations en_dict lang/gmw/en*`` plus a
  copy of the shared library, ~2 MB in the cache) so that generated speaker variants can be
  written into ``voices/!v/`` without touching the installed package.  Obtain it with
  :func:`get_engine`.
* :class:`VoiceSpec` -- the parameters of one generated speaker, rendered to an eSpeak voice
  *variant* file (``pitch``, ``formant``, ``breath``, ``roughness``, ``flutter``, ``klatt`` ...).
  The file is named after a hash of its content (``mini_<12 hex>``) and selected as
  ``en-us+mini_<hash>``.
* :meth:`Engine.synth` -- text -> :class:`Synthesis`: float32 mono audio at 16 kHz (resampled from
  eSpeak's 22,050 Hz with ``scipy.signal.resample_poly(x, 320, 441)``), word timings from eSpeak
  word events and phoneme timings from phoneme events.
* :meth:`Engine.phonemize` -- IPA phonemes from ``espeak_TextToPhonemes``.

Phoneme convention
------------------
Phonemes are eSpeak's **IPA** output (``espeak_TextToPhonemes`` mode ``0x02`` with a space
separator), one token per eSpeak phoneme, so multi-character phonemes such as ``tʃ``, ``aɪ``,
``ɛɹ`` stay single tokens.  :func:`strip_stress` removes the primary/secondary stress marks
``ˈ ˌ`` (the tokens used in lexicons and labels); length marks (``ː``) are kept.

Determinism
-----------
eSpeak draws random numbers (breath noise, some voice sources) from its own generator *and*
from libc ``rand()``, and keeps function-level static state that nothing resets (the pitch-flutter
phase, the roughness cycle counter...).  Every call of :meth:`Engine.synth` therefore loads a
fresh instance of the library, seeds ``espeak_ng_SetRandSeed(seed)`` and libc ``srand(seed)``,
selects the voice and sets every parameter, synthesises, and unloads the library again (~1 ms).
An utterance thus depends only on its arguments, not on what was synthesised before or in which
order; with the same library version and platform the output is byte-for-byte reproducible.
The library keeps global state and is not thread-safe: calls are serialised by a lock; build
corpora in one process, serially.

Timing convention
-----------------
eSpeak reports event positions as sample counts at 22,050 Hz; they are converted to seconds
(which are identical in the 16 kHz output).  A word starts at its word event and ends where the
next phoneme that belongs to a later word (or the end marker) starts; trailing and leading
stretches quieter than -35 dB relative to the utterance peak are then trimmed off each word
(10 ms frames), so pauses are not counted as part of a word.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import dataclasses
import functools
import hashlib
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import _ctypes

import numpy as np
from scipy.signal import firwin, resample_poly

from ..audio import SAMPLE_RATE
from ..fileio import atomic_directory, atomic_write_text

ESPEAK_RATE = 22_050

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_OPT_PHONEME_EVENTS = 0x0001
_OPT_PHONEME_IPA = 0x0002
_OPT_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EV_LIST_TERMINATED = 0
_EV_WORD = 1
_EV_END = 5
_EV_PHONEME = 7
_P_RATE, _P_VOLUME, _P_PITCH, _P_RANGE, _P_PUNCTUATION, _P_CAPITALS, _P_WORDGAP = 1, 2, 3, 4, 5, 6, 7

#: Files of the installed data folder copied into the private folder (English only).
DATA_FILES = ("phondata", "phonindex", "phontab", "intonations", "en_dict")
#: Name of the private copy of the shared library inside the data folder.
LIB_NAME = "libespeak-ng-private.so"

_STRESS_MARKS = "ˈˌ"


class EspeakError(RuntimeError):
    """eSpeak NG could not be loaded or failed to synthesise."""


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                  ctypes.POINTER(_Event))


def strip_stress(tokens: str) -> str:
    """Remove eSpeak's IPA stress marks (``ˈ``, ``ˌ``) from a phoneme string."""
    return "".join(ch for ch in tokens if ch not in _STRESS_MARKS)


# --------------------------------------------------------------------------------------------
# voices
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VoiceSpec:
    """One generated speaker, rendered as an eSpeak NG voice variant file.

    ``formants`` holds 9 ``(frequency %, height %, width %)`` triples (formant 0..8); ``breath``
    holds 8 per-formant breath amplitudes (all zero: no breath line); ``klatt`` selects the
    Klatt voice source (0: eSpeak's default source).  ``rate``/``pitch``/``pitch_range`` are the
    speaker's habitual speaking rate (words per minute) and eSpeak pitch/range parameters
    (0-99), jittered per utterance by the corpus generators.
    """

    gender: str
    pitch_base: int
    pitch_top: int
    formants: tuple[tuple[int, int, int], ...]
    breath: tuple[int, ...] = (0,) * 8
    roughness: int = 0
    flutter: int = 0
    klatt: int = 0
    consonants: int = 100
    echo: tuple[int, int] = (0, 0)
    rate: int = 170
    pitch: int = 50
    pitch_range: int = 50
    language: str = "en-us"

    def variant_text(self) -> str:
        lines = ["language variant", "name {name}", f"gender {self.gender}", "",
                 f"pitch {self.pitch_base} {self.pitch_top}"]
        for k, (f, h, w) in enumerate(self.formants):
            lines.append(f"formant {k} {f} {h} {w}")
        if any(self.breath):
            lines.append("breath " + " ".join(str(b) for b in self.breath))
        lines.append(f"roughness {self.roughness}")
        lines.append(f"flutter {self.flutter}")
        lines.append(f"consonants {self.consonants} {self.consonants}")
        lines.append(f"echo {self.echo[0]} {self.echo[1]}")
        if self.klatt:
            lines.append(f"klatt {self.klatt}")
        return "\n".join(lines) + "\n"

    @property
    def name(self) -> str:
        """File name of the variant (content hash: identical specs share one file)."""
        digest = hashlib.sha1(self.variant_text().encode()).hexdigest()[:12]
        return f"mini_{digest}"

    @property
    def voice_name(self) -> str:
        return f"{self.language}+{self.name}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------
@dataclass
class WordTiming:
    word: str
    start: float
    end: float

    def shifted(self, offset: float) -> "WordTiming":
        return WordTiming(self.word, self.start + offset, self.end + offset)

    def to_dict(self, ndigits: int = 4) -> dict:
        return {"word": self.word, "start": round(self.start, ndigits), "end": round(self.end, ndigits)}


@dataclass
class Synthesis:
    """An utterance: 16 kHz float32 audio in [-1, 1], word and phoneme timings in seconds."""

    audio: np.ndarray
    words: list[WordTiming]
    phones: list[tuple[str, float]] = field(default_factory=list)  # (IPA phoneme, start s)
    ipa: list[str] | None = None  # per word, phonemes space-separated (synth(with_ipa=True))

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    def trim(self, margin: float = 0.0) -> "Synthesis":
        """Cut the audio to ``[first word start - margin, last word end + margin]``."""
        if not self.words:
            return self
        a = max(0, int(np.floor((self.words[0].start - margin) * SAMPLE_RATE)))
        b = min(len(self.audio), int(np.ceil((self.words[-1].end + margin) * SAMPLE_RATE)))
        off = -a / SAMPLE_RATE
        return Synthesis(self.audio[a:b].copy(), [w.shifted(off) for w in self.words],
                         [(p, t + off) for p, t in self.phones if a / SAMPLE_RATE <= t <= b / SAMPLE_RATE],
                         self.ipa)


# --------------------------------------------------------------------------------------------
# engine
# --------------------------------------------------------------------------------------------
def _loader():
    try:
        import espeakng_loader
    except ImportError as exc:  # pragma: no cover - dependency missing
        raise EspeakError("the mini corpus needs eSpeak NG: pip install espeakng-loader") from exc
    return espeakng_loader


def espeak_data_path() -> Path:
    """The data folder shipped with ``espeakng-loader``."""
    return Path(_loader().get_data_path())


def prepare_data_dir(target: Path) -> Path:
    """Create (once) a minimal private English copy of eSpeak's data folder at ``target``.

    The copy is made in a temporary sibling and renamed into place, so a half-copied folder is
    never used.  Returns ``target``.
    """
    target = Path(target)
    if all((target / f).is_file() for f in DATA_FILES + (LIB_NAME,)):
        (target / "voices" / "!v").mkdir(parents=True, exist_ok=True)
        return target
    if target.exists():  # partial or damaged copy
        shutil.rmtree(target)
    src = espeak_data_path()
    missing = [f for f in DATA_FILES if not (src / f).is_file()]
    if missing:
        raise EspeakError(f"eSpeak data folder {src} lacks {missing}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_directory(target, concurrent_winner_ok=True) as tmp:
        for f in DATA_FILES:
            shutil.copyfile(src / f, tmp / f)
        (tmp / "lang" / "gmw").mkdir(parents=True)
        for f in sorted((src / "lang" / "gmw").glob("en*")):
            shutil.copyfile(f, tmp / "lang" / "gmw" / f.name)
        (tmp / "voices" / "!v").mkdir(parents=True)
        shutil.copyfile(_loader().get_library_path(), tmp / LIB_NAME)
    return target


class Engine:
    """eSpeak NG bound to one private data folder.

    The library keeps function-level static state that is never reset (pitch-flutter phase,
    roughness cycle counter, ...), so the same call would give different audio depending on
    what was synthesised before.  Each call therefore loads a *fresh* instance of the library
    (a private copy of the ``.so`` in the data folder, so nothing else in the process shares
    the handle), initialises it, synthesises, terminates and unloads it again (~1 ms).  Calls
    are serialised by a process-wide lock.
    """

    def __init__(self, data_dir: Path):
        self.data_dir = prepare_data_dir(Path(data_dir))
        self._lib_path = self.data_dir / LIB_NAME
        libc_name = ctypes.util.find_library("c") or "libc.so.6"
        self._libc = ctypes.CDLL(libc_name)
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, int, str]] = []
        self._cb = _SynthCallback(self._callback)  # keep a reference for the C side
        self._phoneme_cache: dict[tuple[str, str], list[str]] = {}
        with self._session() as lib:
            lib.espeak_Info.restype = ctypes.c_char_p
            self.version = lib.espeak_Info(None).decode()
        _check_unloaded(self._lib_path)

    @contextlib.contextmanager
    def _session(self):
        if not (self.data_dir / "phondata").is_file() or not self._lib_path.is_file():
            prepare_data_dir(self.data_dir)  # the cache was deleted under us: recreate it
        with _LIB_LOCK:
            lib = ctypes.CDLL(str(self._lib_path))
            try:
                rate = lib.espeak_Initialize(
                    _AUDIO_OUTPUT_SYNCHRONOUS, 0, str(self.data_dir).encode(),
                    _OPT_PHONEME_EVENTS | _OPT_PHONEME_IPA | _OPT_DONT_EXIT)
                if rate != ESPEAK_RATE:
                    raise EspeakError(f"espeak_Initialize({self.data_dir}) returned {rate}, "
                                      f"expected sample rate {ESPEAK_RATE}")
                try:
                    yield lib
                finally:
                    lib.espeak_Terminate()
            finally:
                handle = lib._handle
                del lib
                _ctypes.dlclose(handle)

    def _callback(self, wav, n, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _EV_LIST_TERMINATED:
            ev = events[i]
            name = ""
            if ev.type == _EV_PHONEME:
                name = ev.id.string.decode("utf-8", "replace")
            self._events.append((ev.type, ev.text_position, ev.length, ev.sample, name))
            i += 1
        return 0

    # -- voices -------------------------------------------------------------------------------
    def install_voice(self, spec: VoiceSpec) -> str:
        """Write ``spec``'s variant file into the private data folder; returns the voice name."""
        path = self.data_dir / "voices" / "!v" / spec.name
        text = spec.variant_text().replace("{name}", spec.name)
        if not path.is_file() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, text)
        return spec.voice_name

    def _set_voice(self, lib, voice: str) -> None:
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise EspeakError(f"eSpeak could not select voice {voice!r} (data folder {self.data_dir})")

    # -- synthesis ----------------------------------------------------------------------------
    def synth(self, text: str, voice: VoiceSpec | str = "en-us", *, rate: int | None = None,
              pitch: int | None = None, pitch_range: int | None = None, volume: int = 70,
              seed: int = 0, words: Sequence[str] | None = None,
              with_ipa: bool = False) -> Synthesis:
        """Synthesise ``text``; returns 16 kHz audio with word/phoneme timings.

        ``words`` are the words of ``text`` in order (default: ``text.split()``), each found in
        ``text`` by position; eSpeak's word events are matched to them by character offset
        (see :func:`_timings` for words eSpeak speaks as one unit).  ``with_ipa`` also fills
        ``Synthesis.ipa`` with the sentence's IPA (per word, stress marks kept).
        ``volume`` 70 keeps eSpeak's int16 output from clipping.  The result depends only on
        the arguments (see the class docstring).
        """
        if not text.strip():
            raise ValueError("cannot synthesise empty text")
        if isinstance(voice, VoiceSpec):
            spec = voice
            voice_name = self.install_voice(spec)
            rate = spec.rate if rate is None else rate
            pitch = spec.pitch if pitch is None else pitch
            pitch_range = spec.pitch_range if pitch_range is None else pitch_range
        else:
            voice_name = voice
        rate = 175 if rate is None else int(rate)
        pitch = 50 if pitch is None else int(pitch)
        pitch_range = 50 if pitch_range is None else int(pitch_range)
        words = list(text.split() if words is None else words)
        data = text.encode("utf-8")
        with self._session() as lib:
            self._set_voice(lib, voice_name)
            for param, value in ((_P_RATE, rate), (_P_VOLUME, volume), (_P_PITCH, pitch),
                                 (_P_RANGE, pitch_range), (_P_PUNCTUATION, 0), (_P_CAPITALS, 0),
                                 (_P_WORDGAP, 0)):
                lib.espeak_SetParameter(param, int(value), 0)
            seed32 = int(seed) & 0x7FFFFFFF
            lib.espeak_ng_SetRandSeed(ctypes.c_long(seed32))
            self._libc.srand(ctypes.c_uint(seed32))
            self._chunks, self._events = [], []
            lib.espeak_SetSynthCallback(self._cb)
            err = lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8,
                                   None, None)
            if err != 0:
                raise EspeakError(f"espeak_Synth failed ({err}) for {text!r}")
            lib.espeak_Synchronize()
            ipa = _text_to_phonemes(lib, text) if with_ipa else None
            chunks, events = self._chunks, self._events
            self._chunks, self._events = [], []
        if not chunks:
            raise EspeakError(f"eSpeak produced no audio for {text!r} with voice {voice_name!r}")
        raw = np.concatenate(chunks).astype(np.float64) / 32768.0
        audio = resample_poly(raw, 320, 441, window=_resample_filter()).astype(np.float32)
        word_times, phones = _timings(events, words, audio, text, len(raw), self._phone_counts)
        return Synthesis(audio, word_times, phones, ipa)

    def _phone_counts(self, words: Sequence[str]) -> list[int]:
        return [sum(len(p.split()) for p in self.phonemize(w)) for w in words]

    def phonemize(self, text: str, voice: str = "en-us", stress: bool = True) -> list[str]:
        """IPA phonemes of ``text``: one list entry per word, phonemes separated by spaces."""
        key = (text, voice)
        if key not in self._phoneme_cache:
            with self._session() as lib:
                self._set_voice(lib, voice)
                self._phoneme_cache[key] = _text_to_phonemes(lib, text)
        words = self._phoneme_cache[key]
        return [strip_stress(w) for w in words] if not stress else list(words)


def _text_to_phonemes(lib, text: str) -> list[str]:
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
    buf = ctypes.create_string_buffer(text.encode("utf-8"))
    ptr = ctypes.c_char_p(ctypes.addressof(buf))
    out = []
    while ptr.value:
        res = lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8,
                                        _OPT_PHONEME_IPA | (ord(" ") << 8))
        if res:
            out.append(res.decode("utf-8"))
    # words are separated by two spaces, phonemes by one
    return [" ".join(w.split()) for w in "  ".join(out).split("  ") if w.strip()]


def _check_unloaded(lib_path: Path) -> None:
    """Fail loudly if the private library copy stayed mapped after unloading (Linux only)."""
    maps = Path("/proc/self/maps")
    if not maps.is_file():
        return
    if str(lib_path) in maps.read_text():
        raise EspeakError(f"{lib_path} stays loaded after dlclose: eSpeak state would leak "
                          "between utterances and break reproducibility")


@functools.lru_cache(maxsize=1)
def _resample_filter() -> np.ndarray:
    """The FIR filter ``resample_poly(x, 320, 441)`` designs by default, computed once."""
    return firwin(2 * 10 * 441 + 1, 1.0 / 441, window=("kaiser", 5.0))


def _word_offsets(text: str, words: Sequence[str]) -> list[int]:
    """1-based character offsets of ``words`` in ``text`` (searched left to right)."""
    offsets, pos = [], 0
    low = text.lower()
    for w in words:
        i = low.find(w.lower(), pos)
        if i < 0:
            raise EspeakError(f"word {w!r} not found in {text!r} after character {pos}")
        offsets.append(i + 1)
        pos = i + len(w)
    return offsets


def _timings(events, words, audio, text, n_raw, phone_counts):
    """Word and phoneme timings (seconds) from eSpeak events (see module docstring).

    eSpeak sometimes speaks two words as one unit with a single word event ("that the");
    the words of such a group share its phoneme events, split by each word's own phoneme count
    (``phone_counts(words)``), or in proportion to it if the counts don't match the events.
    """
    if not words:
        raise EspeakError(f"no words given for {text!r}")
    offsets = _word_offsets(text, words)
    total = n_raw / ESPEAK_RATE
    # group the event stream by word event
    groups: list[tuple[int, float, list[tuple[str, float]]]] = []  # (first word, start, phones)
    phones: list[tuple[str, float]] = []
    n_word_events = sum(1 for e in events if e[0] == _EV_WORD)
    if n_word_events > len(words):
        raise EspeakError(f"eSpeak reported {n_word_events} words for {text!r}, more than the "
                          f"{len(words)} given: {list(words)}")
    for typ, tpos, _length, sample, name in events:
        t = sample / ESPEAK_RATE
        if typ == _EV_WORD:
            prev = groups[-1][0] if groups else -1
            if n_word_events == len(words):  # the usual case: one event per word
                idx = prev + 1
            else:  # merged words: the word nearest to the (approximate) event position
                left = len(words) - (n_word_events - len(groups))  # leave room for later events
                cands = range(prev + 1, left + 1)
                idx = min(cands, key=lambda i: (abs(offsets[i] - tpos), i), default=None)
                if idx is None:
                    raise EspeakError(f"eSpeak word event at character {tpos} of {text!r} does "
                                      f"not match the words {list(words)}")
            groups.append((idx, t, []))
        elif typ == _EV_PHONEME and name:
            phones.append((name, t))
            if groups:
                groups[-1][2].append((name, t))
    if not groups or groups[0][0] != 0:
        raise EspeakError(f"eSpeak reported no word event for the first word of {text!r}")
    starts: list[float] = []
    for g, (idx, t0, g_phones) in enumerate(groups):
        t1 = groups[g + 1][1] if g + 1 < len(groups) else total
        nxt = groups[g + 1][0] if g + 1 < len(groups) else len(words)
        members = list(range(idx, nxt))
        if len(members) == 1:
            starts.append(t0)
            continue
        counts = [max(1, c) for c in phone_counts([words[i] for i in members])]
        if sum(counts) == len(g_phones) and len(counts) == len(members):
            k = 0
            for c in counts:
                starts.append(t0 if k == 0 else g_phones[k][1])
                k += c
        else:  # proportional split of the group's span
            span_end = g_phones[-1][1] if g_phones else t1
            cum = np.concatenate([[0], np.cumsum(counts)]) / max(sum(counts), 1)
            starts += [t0 + float(c) * (span_end - t0) for c in cum[:-1]]
    bounds = starts[1:] + [total]
    frame = SAMPLE_RATE // 100
    n_frames = len(audio) // frame
    env = np.sqrt(np.mean(audio[: n_frames * frame].astype(np.float64).reshape(n_frames, frame) ** 2,
                          axis=1)) if n_frames else np.zeros(0)
    thr = (env.max() if len(env) else 0.0) * 10 ** (-35 / 20)
    out = []
    for w, s, e in zip(words, starts, bounds):
        e = max(min(e, total), s)
        f0, f1 = int(s * 100), min(int(np.ceil(e * 100)), n_frames)
        loud = np.nonzero(env[f0:f1] > thr)[0] if f1 > f0 else np.zeros(0, dtype=int)
        if len(loud):
            s2 = max(s, (f0 + loud[0]) / 100)
            e2 = min(e, (f0 + loud[-1] + 1) / 100)
            if e2 > s2:
                s, e = s2, e2
        out.append(WordTiming(w, float(s), float(e)))
    return out, phones


_LIB_LOCK = threading.RLock()  # the library is process-global and not thread-safe
_ENGINES: dict[Path, Engine] = {}


def get_engine(data_dir: Path) -> Engine:
    """The :class:`Engine` for the private data folder ``data_dir`` (created on first use)."""
    key = Path(data_dir).absolute()
    with _LIB_LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = Engine(key)
        return _ENGINES[key]

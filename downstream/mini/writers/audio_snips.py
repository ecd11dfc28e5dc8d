"""Split ``snips``: spoken slot-filling commands in the Audio SNIPS layout (SF).

Layout written under the split directory ``<dir>`` (``ensure_split`` returns ``<dir>``; the SF
task's ``--data`` is ``<dir>/SNIPS`` and it also accepts ``<dir>``)::

    <dir>/SNIPS/all.iob.snips.txt       <Speaker>-snips-<split>-<n> BOS w1 .. wn EOS<TAB>O t1 .. tn <Intent>
    <dir>/SNIPS/{train,valid,test}/<Speaker>-snips-<split>-<n>.wav
    <dir>/labels.jsonl                  one record per .wav (extra)
    <dir>/COMPLETE                      build marker (written last)

* Speakers carry the 16 Audio SNIPS voice names (generated eSpeak speakers behind them): the
  SUPERB protocol's 8 training voices speak the train sentences, its 4 + 4 valid / test voices
  the valid / test sentences. Each split folder also holds ``extra_per_split`` files of one voice
  from another split (as the real folders hold all voices), which the protocol ignores.
* Sentences come from SNIPS-style intent templates with slots, e.g. ``play <artist>john
  legend</artist> on <service>spotify</service>`` (``TEMPLATES``, ``VALUES``; 7 intents, 19 slot
  types named as in SNIPS). Text is upper case, words A-Z only; ``ti`` is the slot type of word
  ``wi`` or ``O`` (plain type names, as s3prl's ``iob`` column). Each sentence gets its own id
  ``<n>`` within its split and is said by one voice.
* Audio: the sentence with the voice and jittered prosody, trimmed, scaled to a random peak in
  0.4-0.8, 0.1-0.3 s of lead-in and tail over a -75 to -55 dBFS noise floor.

labels.jsonl fields: ``path``, ``id``, ``speaker`` (voice name), ``text``, ``words``,
``phonemes``, ``tags``, ``intent``, ``subset``, ``voice``, ``duration``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import noise as N
from ..common import BuildContext, LabelWriter, place_level, write_wav
from ...audio import SAMPLE_RATE

ROOT = "SNIPS"
TRAIN_SPEAKERS = ("Ivy", "Joanna", "Joey", "Justin", "Kendra", "Kimberly", "Matthew", "Salli")
VALID_SPEAKERS = ("Aditi", "Amy", "Geraint", "Nicole")
TEST_SPEAKERS = ("Brian", "Emma", "Raveena", "Russell")
FOLDERS = {"train": TRAIN_SPEAKERS, "valid": VALID_SPEAKERS, "test": TEST_SPEAKERS}
FIRST_SPEAKER = 4000

TEMPLATES = {
    "PlayMusic": ("play {artist} on {service}", "play some {genre} music", "play the song {track} by {artist}",
                  "i want to hear {artist} on {service}", "play a {music_item} by {artist}",
                  "put on some {genre} from {artist}"),
    "GetWeather": ("what is the weather in {city} {timeRange}", "will it be {condition_description} in {city} {timeRange}",
                   "tell me the forecast for {city}", "is it going to be {condition_description} {timeRange}"),
    "AddToPlaylist": ("add {artist} to my {playlist} playlist", "add this {music_item} to {playlist}",
                      "put {track} on my {playlist} playlist"),
    "BookRestaurant": ("book a table for {party_size_number} at {restaurant_name}",
                       "book a {restaurant_type} in {city} for {party_size_number} people",
                       "reserve a table at a {served_dish} restaurant {timeRange}"),
    "RateBook": ("rate {object_name} {rating_value} out of {best_rating}", "give {object_name} {rating_value} stars"),
    "SearchScreeningEvent": ("find movie times for {movie_name} at {location_name}",
                             "when is {movie_name} playing {timeRange}"),
    "SearchCreativeWork": ("find the {object_type} called {object_name}", "show me the {object_type} {movie_name}"),
}
VALUES = {
    "artist": ("john legend", "the beatles", "norah jones", "miles davis", "taylor swift", "bob marley",
               "lady gaga", "frank sinatra", "elton john", "ray charles"),
    "service": ("spotify", "youtube", "pandora", "deezer", "itunes", "soundcloud"),
    "genre": ("jazz", "blues", "rock", "reggae", "country", "classical", "techno"),
    "track": ("yellow submarine", "hey jude", "purple rain", "let it be", "blue moon", "summer wind"),
    "music_item": ("song", "album", "track", "tune"),
    "playlist": ("road trip", "morning coffee", "dinner party", "workout", "sunday chill", "study time"),
    "city": ("paris", "boston", "london", "chicago", "madrid", "tokyo", "denver", "seattle", "dublin", "miami"),
    "timeRange": ("tomorrow", "tonight", "this weekend", "next monday", "on friday", "this evening"),
    "condition_description": ("sunny", "rainy", "cold", "windy", "snowy", "warm"),
    "party_size_number": ("two", "three", "four", "five", "six", "eight"),
    "restaurant_name": ("the golden dragon", "blue bistro", "marios", "the corner house", "green garden"),
    "restaurant_type": ("pizzeria", "steakhouse", "diner", "cafe", "brasserie"),
    "served_dish": ("sushi", "pasta", "curry", "seafood", "burger", "tapas"),
    "object_name": ("the hobbit", "war and peace", "moby dick", "the odyssey", "little women", "dracula"),
    "rating_value": ("one", "two", "three", "four", "five"),
    "best_rating": ("five", "ten"),
    "movie_name": ("the matrix", "star wars", "jurassic park", "toy story", "the lion king", "finding nemo"),
    "location_name": ("the regal cinema", "city theater", "the grand hall", "sunset movies"),
    "object_type": ("book", "novel", "movie", "song", "album", "saga"),
}
_SLOT = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Config:
    per_speaker: dict      # folder -> sentences per protocol speaker
    extra_per_split: int   # files of one other-split voice in each folder


PROFILES = {
    "tiny": Config(per_speaker={"train": 3, "valid": 2, "test": 2}, extra_per_split=1),
    "default": Config(per_speaker={"train": 60, "valid": 25, "test": 25}, extra_per_split=4),
}


def draw_sentence(rng: np.random.Generator) -> tuple[str, list[str], list[str]]:
    """``(intent, words, tags)`` of one templated command (lower-case words)."""
    intent = str(rng.choice(sorted(TEMPLATES)))
    template = str(rng.choice(TEMPLATES[intent]))
    words, tags = [], []
    for piece in re.split(r"(\{\w+\})", template):
        m = _SLOT.fullmatch(piece)
        if m:
            value = str(rng.choice(VALUES[m.group(1)])).split()
            words += value
            tags += [m.group(1)] * len(value)
        else:
            for w in piece.split():
                words.append(w)
                tags.append("O")
    return intent, words, tags


def iob_line(utt_id: str, words: list[str], tags: list[str], intent: str) -> str:
    return f"{utt_id} BOS {' '.join(w.upper() for w in words)} EOS\tO {' '.join(tags)} {intent}"


def build(out_dir: Path, ctx: BuildContext) -> None:
    cfg = PROFILES[ctx.profile]
    labels = LabelWriter()
    names = TRAIN_SPEAKERS + VALID_SPEAKERS + TEST_SPEAKERS
    voices = {name: ctx.pool[FIRST_SPEAKER + k] for k, name in enumerate(names)}
    plan = []  # (folder, speaker name, sentence index)
    for f, (folder, speakers) in enumerate(FOLDERS.items()):
        n = 0
        for s in speakers:
            for _ in range(cfg.per_speaker[folder]):
                plan.append((folder, s, n))
                n += 1
        other = FOLDERS[list(FOLDERS)[(f + 1) % 3]][0]  # one voice of another split
        for _ in range(cfg.extra_per_split):
            plan.append((folder, other, n))
            n += 1
    lines = []
    with ctx.progress_bar(len(plan), "mini snips") as bar:
        for folder, name, n in plan:
            keys = ("snips", folder, n)
            rng = ctx.rng(*keys)
            intent, words, tags = draw_sentence(rng)
            sp = voices[name]
            syn = ctx.engine.synth(" ".join(words) + ".", sp.voice, words=words, seed=ctx.espeak_seed(*keys),
                                   **sp.prosody(rng)).trim()
            speech = N.fade(place_level(rng, syn.audio, 0.4, 0.8))
            lead, tail = (int(rng.uniform(0.1, 0.3) * SAMPLE_RATE) for _ in range(2))
            audio = N.set_level(N.make_noise(str(rng.choice(["white", "pink", "brown"])), rng,
                                             lead + len(speech) + tail), float(rng.uniform(-75, -55)))
            audio[lead:lead + len(speech)] += speech
            uid = f"{name}-snips-{folder}-{n}"
            rel = f"{ROOT}/{folder}/{uid}.wav"
            write_wav(out_dir / rel, audio, ctx)
            lines.append(iob_line(uid, words, tags, intent))
            labels.add({"path": rel, "id": uid, "speaker": name, "subset": folder, "intent": intent,
                        "text": " ".join(w.upper() for w in words), "tags": tags,
                        "words": [w.shifted(lead / SAMPLE_RATE).to_dict() for w in syn.words],
                        "phonemes": " ".join(ctx.word_phonemes(w) for w in words), "voice": sp.voice.name,
                        "duration": round(len(audio) / SAMPLE_RATE, 4)})
            bar.update()
    (out_dir / ROOT / "all.iob.snips.txt").write_text("\n".join(sorted(lines)) + "\n", encoding="utf-8")
    labels.write(out_dir)

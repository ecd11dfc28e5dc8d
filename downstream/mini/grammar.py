"""A small English sentence grammar shared by the mini corpora.

Sentences are drawn from a handful of templates (statements with transitive and intransitive
verbs, modal and negated verbs, questions, reported speech, coordination) over a closed
vocabulary of about 400 words (:data:`VOCABULARY`), 3-12 words long.  Words are lower-case
ASCII letters with at most one apostrophe (``don't``, ``it's``), so the LibriSpeech-style
transcript is simply the upper-cased sentence.  :func:`sentence` is a pure function of the
generator state.
"""

from __future__ import annotations

import re

import numpy as np

DETERMINERS = "the a this that every some my your his her our their no each another".split()
PLURAL_DETERMINERS = "the some many few these those my your our their two three four five several".split()
NAMES = ("john mary peter susan david anna thomas emma james laura robert alice henry clara "
         "george helen frank lucy oliver sarah").split()
ADJECTIVES = ("old young big small tall short happy sad quiet loud bright dark warm cold green red "
              "blue yellow white black brown clever gentle angry busy empty heavy light strange "
              "little lonely famous simple careful honest lazy proud rich poor soft sharp").split()
NOUNS = ("man woman child boy girl teacher doctor farmer sailor king queen soldier baker "
         "driver friend neighbour stranger dog cat horse bird fish cow sheep fox wolf mouse "
         "house garden river forest mountain village city road bridge window door table chair "
         "book letter song story picture box basket cup bottle apple bread cake coat hat ship "
         "boat train car lamp candle key clock flower tree stone field lake island castle "
         "kitchen market school church morning evening winter summer").split()
PLURAL_NOUNS = ("men women children boys girls teachers doctors farmers sailors soldiers dogs "
                "cats horses birds sheep foxes wolves mice houses gardens rivers trees flowers "
                "books letters songs stories boxes cups apples cakes ships boats cars lamps keys "
                "stones fields friends").split()
PLACES = ("the house|the garden|the river|the forest|the village|the city|the road|the bridge|"
          "the market|the school|the church|the kitchen|the lake|the castle|the field|the hill|"
          "the sea|the station|the window|the door|the table").split("|")
PREPOSITIONS = "in near behind beside under over across along through from into towards".split()
TRANSITIVE_PAST = ("saw found took gave made bought sold carried opened closed painted cleaned "
                   "watched followed helped called visited remembered loved hated wanted needed "
                   "liked kept lost brought wrote read built broke moved pushed pulled washed "
                   "caught chased fed met heard knew").split()
TRANSITIVE_BASE = ("see find take give make buy sell carry open close paint clean watch follow "
                   "help call visit remember love want need like keep lose bring write read "
                   "build break move push pull wash catch chase feed meet hear know").split()
INTRANSITIVE_PAST = ("walked ran slept laughed cried waited worked played sang danced smiled "
                     "arrived left stayed fell jumped swam rested listened spoke shouted "
                     "whispered returned travelled lived sat stood").split()
INTRANSITIVE_BASE = ("walk run sleep laugh cry wait work play sing dance smile arrive leave stay "
                     "fall jump swim rest listen speak shout whisper return travel live sit "
                     "stand").split()
MODALS = "can will could would should must might can't won't didn't don't doesn't wouldn't couldn't".split()
ADVERBS = ("quickly slowly quietly loudly happily sadly carefully suddenly often never always "
           "again today yesterday early late soon together alone there here").split()
REPORT_VERBS = "said thought knew believed heard".split()
CONJUNCTIONS = "and but because while so".split()
FILLERS = ("it's very too quite also then now just only still yes no please well of to for "
           "with at when where what why how who there's that's isn't wasn't here's where's really").split()

_TEMPLATES = ("svo", "sv", "modal_vo", "modal_v", "question", "report", "coord", "there", "its")


def _np(rng: np.random.Generator, allow_name: bool = True) -> list[str]:
    """A noun phrase."""
    r = rng.random()
    if allow_name and r < 0.2:
        return [str(rng.choice(NAMES))]
    if r < 0.45:
        words = [str(rng.choice(PLURAL_DETERMINERS))]
        if rng.random() < 0.4:
            words.append(str(rng.choice(ADJECTIVES)))
        return words + [str(rng.choice(PLURAL_NOUNS))]
    words = [str(rng.choice(DETERMINERS))]
    if rng.random() < 0.45:
        words.append(str(rng.choice(ADJECTIVES)))
    return words + [str(rng.choice(NOUNS))]


def _pp(rng: np.random.Generator) -> list[str]:
    return [str(rng.choice(PREPOSITIONS))] + str(rng.choice(PLACES)).split()


def _tail(rng: np.random.Generator) -> list[str]:
    words: list[str] = []
    if rng.random() < 0.4:
        words += _pp(rng)
    if rng.random() < 0.3:
        words.append(str(rng.choice(ADVERBS)))
    return words


def _clause(rng: np.random.Generator, kind: str) -> list[str]:
    if kind == "svo":
        return _np(rng) + [str(rng.choice(TRANSITIVE_PAST))] + _np(rng) + _tail(rng)
    if kind == "sv":
        return _np(rng) + [str(rng.choice(INTRANSITIVE_PAST))] + _tail(rng)
    if kind == "modal_vo":
        return _np(rng) + [str(rng.choice(MODALS)), str(rng.choice(TRANSITIVE_BASE))] + _np(rng) + _tail(rng)
    if kind == "modal_v":
        return _np(rng) + [str(rng.choice(MODALS)), str(rng.choice(INTRANSITIVE_BASE))] + _tail(rng)
    if kind == "question":
        if rng.random() < 0.5:
            return ["did"] + _np(rng) + [str(rng.choice(TRANSITIVE_BASE))] + _np(rng) + _tail(rng)
        return [str(rng.choice(["where", "why", "when", "how"])), "did"] + _np(rng) + \
            [str(rng.choice(INTRANSITIVE_BASE))]
    if kind == "report":
        return [str(rng.choice(NAMES)), str(rng.choice(REPORT_VERBS)), "that"] + \
            _clause(rng, str(rng.choice(["svo", "sv"])))
    if kind == "coord":
        return _clause(rng, str(rng.choice(["sv", "svo"]))) + [str(rng.choice(CONJUNCTIONS))] + \
            _clause(rng, "sv")
    if kind == "there":
        lead = str(rng.choice(["there's", "there was", "that's", "here's", "where's"]))
        return lead.split() + _np(rng, allow_name=False) + _pp(rng)
    if kind == "its":
        lead = str(rng.choice(["it's", "it was", "that's", "it isn't", "it wasn't"]))
        return lead.split() + \
            [str(rng.choice(["very", "too", "quite", "still", "so", "really"])),
             str(rng.choice(ADJECTIVES))] + _tail(rng)
    raise ValueError(f"unknown sentence template {kind!r}; valid: {_TEMPLATES}")


def sentence(rng: np.random.Generator, min_words: int = 3, max_words: int = 12) -> list[str]:
    """One sentence as a list of lower-case words, ``min_words <= len <= max_words``."""
    if not 1 <= min_words <= max_words:
        raise ValueError(f"need 1 <= min_words <= max_words, got {min_words}, {max_words}")
    for _ in range(1000):
        words = _clause(rng, str(rng.choice(_TEMPLATES)))
        if min_words <= len(words) <= max_words:
            return words
    raise RuntimeError(f"grammar produced no sentence of {min_words}-{max_words} words")


def transcript(words: list[str]) -> str:
    """LibriSpeech-style transcript: upper case, words separated by single spaces."""
    return " ".join(w.upper() for w in words)


_WORD_RE = re.compile(r"^[a-z]+('[a-z]+)?$")


def _vocabulary() -> list[str]:
    words: set[str] = set()
    for group in (DETERMINERS, PLURAL_DETERMINERS, NAMES, ADJECTIVES, NOUNS, PLURAL_NOUNS,
                  PREPOSITIONS, TRANSITIVE_PAST, TRANSITIVE_BASE, INTRANSITIVE_PAST,
                  INTRANSITIVE_BASE, MODALS, ADVERBS, REPORT_VERBS, CONJUNCTIONS, FILLERS):
        words.update(group)
    for place in PLACES:
        words.update(place.split())
    words.update(["did", "that", "where", "why", "when", "how", "was", "it", "so"])
    bad = sorted(w for w in words if not _WORD_RE.match(w))
    if bad:
        raise ValueError(f"grammar vocabulary has words outside [a-z'] : {bad}")
    return sorted(words)


#: Every word of the grammar's word lists (lower case, sorted); a superset of what it produces.
VOCABULARY: list[str] = _vocabulary()

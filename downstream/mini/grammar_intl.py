"""Small template grammars for the non-English and translation mini corpora.

* :func:`english_german` -- a parallel English/German sentence pair (ST). German articles and
  adjective endings agree in gender and case (nominative, accusative; dative only in the fixed
  contractions ``im``/``in der``/``zum``/``zur``), nouns are capitalised, both sides end with a
  period. About 25 nouns, 16 adjectives, 8 names, 8 places, numbers 2-10.
* :func:`spanish` -- a Spanish sentence with gender agreement (article, adjective), written the
  way Common Voice prompts are (capital letter, final punctuation, ``¿...?`` questions).
* :func:`mandarin` -- a Mandarin sentence in simplified characters, no spaces, ending in ``。``
  or ``？`` (subject / time / verb / object, location, adjective and question templates).

Every function is a pure function of the numpy generator's state and returns the text; the
speakable words (for eSpeak's word timings) are the whitespace-separated tokens for English and
Spanish and the single characters for Mandarin.
"""
from __future__ import annotations

import numpy as np

# (english singular, english plural, german singular, german plural, gender m/f/n)
_NOUNS = [
    ("dog", "dogs", "Hund", "Hunde", "m"), ("cat", "cats", "Katze", "Katzen", "f"),
    ("house", "houses", "Haus", "Häuser", "n"), ("car", "cars", "Auto", "Autos", "n"),
    ("book", "books", "Buch", "Bücher", "n"), ("apple", "apples", "Apfel", "Äpfel", "m"),
    ("table", "tables", "Tisch", "Tische", "m"), ("door", "doors", "Tür", "Türen", "f"),
    ("bird", "birds", "Vogel", "Vögel", "m"), ("flower", "flowers", "Blume", "Blumen", "f"),
    ("child", "children", "Kind", "Kinder", "n"), ("woman", "women", "Frau", "Frauen", "f"),
    ("man", "men", "Mann", "Männer", "m"), ("teacher", "teachers", "Lehrer", "Lehrer", "m"),
    ("girl", "girls", "Mädchen", "Mädchen", "n"), ("letter", "letters", "Brief", "Briefe", "m"),
    ("window", "windows", "Fenster", "Fenster", "n"), ("chair", "chairs", "Stuhl", "Stühle", "m"),
    ("cup", "cups", "Tasse", "Tassen", "f"), ("key", "keys", "Schlüssel", "Schlüssel", "m"),
    ("horse", "horses", "Pferd", "Pferde", "n"), ("tree", "trees", "Baum", "Bäume", "m"),
    ("bottle", "bottles", "Flasche", "Flaschen", "f"), ("ship", "ships", "Schiff", "Schiffe", "n"),
    ("clock", "clocks", "Uhr", "Uhren", "f"),
]
_ADJECTIVES = [("big", "groß"), ("small", "klein"), ("old", "alt"), ("new", "neu"), ("red", "rot"),
               ("green", "grün"), ("beautiful", "schön"), ("black", "schwarz"), ("white", "weiß"),
               ("young", "jung"), ("fast", "schnell"), ("quiet", "ruhig"), ("happy", "glücklich"),
               ("tired", "müde"), ("cold", "kalt"), ("warm", "warm")]
_NAMES = ["Anna", "Peter", "Maria", "Thomas", "Lisa", "Paul", "Laura", "Max"]
# (english, german, gender)
_PLACES = [("garden", "Garten", "m"), ("kitchen", "Küche", "f"), ("house", "Haus", "n"), ("car", "Auto", "n"),
           ("school", "Schule", "f"), ("box", "Kiste", "f"), ("park", "Park", "m"), ("city", "Stadt", "f")]
_NUMBERS = [("two", "zwei"), ("three", "drei"), ("four", "vier"), ("five", "fünf"), ("six", "sechs"),
            ("seven", "sieben"), ("eight", "acht"), ("nine", "neun"), ("ten", "zehn")]
_TIMES = [("today", "heute"), ("tomorrow", "morgen"), ("now", "jetzt")]

_DEF_NOM = {"m": "der", "f": "die", "n": "das"}
_DEF_ACC = {"m": "den", "f": "die", "n": "das"}
_INDEF_ACC = {"m": "einen", "f": "eine", "n": "ein"}
_WEAK_ACC = {"m": "en", "f": "e", "n": "e"}      # after the definite article, accusative
_MIXED_ACC = {"m": "en", "f": "e", "n": "es"}    # after the indefinite article, accusative
_IN = {"m": "im", "f": "in der", "n": "im"}
_TO = {"m": "zum", "f": "zur", "n": "zum"}


def _decline(adj: str, ending: str) -> str:
    """German adjective + ending (``müde`` + ``en`` -> ``müden``)."""
    return adj + (ending[1:] if adj.endswith("e") and ending.startswith("e") else ending)


def _pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def english_german(rng: np.random.Generator) -> tuple[str, str]:
    """One parallel sentence pair ``(english, german)``, both capitalised and ending with '.'."""
    kind = int(rng.integers(7))
    en_n, en_pl, de_n, de_pl, g = _pick(rng, _NOUNS)
    en_a, de_a = _pick(rng, _ADJECTIVES)
    if kind == 0:
        en_b, de_b = _pick(rng, _ADJECTIVES)
        en, de = f"the {en_a} {en_n} is {en_b}", f"{_DEF_NOM[g]} {_decline(de_a, 'e')} {de_n} ist {de_b}"
    elif kind == 1:
        if rng.random() < 0.5:
            en, de = f"I see the {en_n}", f"ich sehe {_DEF_ACC[g]} {de_n}"
        else:
            en, de = f"I see the {en_a} {en_n}", f"ich sehe {_DEF_ACC[g]} {_decline(de_a, _WEAK_ACC[g])} {de_n}"
    elif kind == 2:
        name = _pick(rng, _NAMES)
        en = f"{name} has {'an' if en_a[0] in 'aeiou' else 'a'} {en_a} {en_n}"
        de = f"{name} hat {_INDEF_ACC[g]} {_decline(de_a, _MIXED_ACC[g])} {de_n}"
    elif kind == 3:
        en_p, de_p, gp = _pick(rng, _PLACES)
        en, de = f"the {en_n} is in the {en_p}", f"{_DEF_NOM[g]} {de_n} ist {_IN[gp]} {de_p}"
    elif kind == 4:
        en_num, de_num = _pick(rng, _NUMBERS)
        en, de = f"we have {en_num} {en_pl}", f"wir haben {de_num} {de_pl}"
    elif kind == 5:
        name = _pick(rng, _NAMES)
        en_p, de_p, gp = _pick(rng, _PLACES)
        en_t, de_t = _pick(rng, _TIMES)
        en, de = f"{name} is going to the {en_p} {en_t}", f"{name} geht {de_t} {_TO[gp]} {de_p}"
    else:
        en, de = f"the {en_pl} are {en_a}", f"die {de_pl} sind {de_a}"
    return _cap(en) + ".", _cap(de) + "."


# ---------------------------------------------------------------------------------------------
# Spanish
# ---------------------------------------------------------------------------------------------
_ES_NOUNS = [("perro", "m"), ("gato", "m"), ("niño", "m"), ("niña", "f"), ("casa", "f"), ("mesa", "f"),
             ("libro", "m"), ("ciudad", "f"), ("árbol", "m"), ("flor", "f"), ("mujer", "f"), ("hombre", "m"),
             ("coche", "m"), ("ventana", "f"), ("playa", "f"), ("río", "m"), ("manzana", "f"), ("pájaro", "m"),
             ("camisa", "f"), ("caballo", "m")]
_ES_ADJ = [("pequeño", "pequeña"), ("grande", "grande"), ("rojo", "roja"), ("nuevo", "nueva"),
           ("viejo", "vieja"), ("bonito", "bonita"), ("blanco", "blanca"), ("alto", "alta"),
           ("negro", "negra"), ("feliz", "feliz")]
_ES_VT = ["ve", "tiene", "busca", "compra", "lleva", "quiere", "encuentra", "mira"]
_ES_VI = ["duerme", "corre", "canta", "camina", "trabaja", "llega", "descansa", "espera"]
_ES_PLACES = [("cocina", "f"), ("jardín", "m"), ("parque", "m"), ("escuela", "f"), ("calle", "f"), ("mercado", "m")]
_ES_NAMES = ["María", "José", "Carmen", "Luis", "Elena", "Pablo", "Lucía", "Javier"]
_ES_TIMES = ["hoy", "mañana", "ahora", "siempre", "nunca"]
_ES_DEF = {"m": "el", "f": "la"}
_ES_INDEF = {"m": "un", "f": "una"}


def _es_np(rng: np.random.Generator, indefinite: bool = False) -> str:
    noun, g = _pick(rng, _ES_NOUNS)
    art = (_ES_INDEF if indefinite else _ES_DEF)[g]
    if rng.random() < 0.5:
        adj = _pick(rng, _ES_ADJ)[0 if g == "m" else 1]
        return f"{art} {noun} {adj}"
    return f"{art} {noun}"


def spanish(rng: np.random.Generator) -> str:
    kind = int(rng.integers(5))
    if kind == 0:
        s = f"{_cap(_es_np(rng))} {_pick(rng, _ES_VT)} {_es_np(rng, rng.random() < 0.5)}."
    elif kind == 1:
        place, g = _pick(rng, _ES_PLACES)
        s = f"{_cap(_es_np(rng))} {_pick(rng, _ES_VI)} en {_ES_DEF[g]} {place}."
    elif kind == 2:
        s = f"{_pick(rng, _ES_NAMES)} {_pick(rng, _ES_VT)} {_es_np(rng)} {_pick(rng, _ES_TIMES)}."
    elif kind == 3:
        s = f"¿Dónde está {_es_np(rng)}?"
    else:
        noun, g = _pick(rng, _ES_NOUNS)
        adj = _pick(rng, _ES_ADJ)[0 if g == "m" else 1]
        s = f"{_cap(_ES_DEF[g])} {noun} es muy {adj}."
    return s


# ---------------------------------------------------------------------------------------------
# Mandarin (simplified characters)
# ---------------------------------------------------------------------------------------------
_ZH_SUBJ = ["我", "你", "他", "她", "我们", "老师", "学生", "妈妈", "爸爸", "朋友", "医生", "孩子"]
_ZH_TIME = ["今天", "明天", "昨天", "现在", ""]
_ZH_VO = {"吃": ["苹果", "米饭", "面条", "饺子", "面包"], "喝": ["茶", "水", "咖啡", "牛奶"],
          "看": ["书", "电影", "电视", "报纸"], "买": ["衣服", "水果", "车票", "花"],
          "喜欢": ["音乐", "中国菜", "小狗", "唱歌"]}
_ZH_PLACES = ["学校", "家", "公园", "北京", "上海", "图书馆", "医院", "商店"]
_ZH_ACT = ["工作", "学习", "休息", "看书", "跑步", "吃饭"]
_ZH_ADJ = ["高兴", "忙", "累", "好", "漂亮", "聪明"]


def mandarin(rng: np.random.Generator) -> str:
    kind = int(rng.integers(4))
    subj = _pick(rng, _ZH_SUBJ)
    if kind == 0:
        verb = _pick(rng, sorted(_ZH_VO))
        return f"{subj}{_pick(rng, _ZH_TIME)}{verb}{_pick(rng, _ZH_VO[verb])}。"
    if kind == 1:
        return f"{subj}{_pick(rng, _ZH_TIME)}在{_pick(rng, _ZH_PLACES)}{_pick(rng, _ZH_ACT)}。"
    if kind == 2:
        return f"{subj}很{_pick(rng, _ZH_ADJ)}。"
    return f"{subj}{_pick(rng, _ZH_TIME)}去{_pick(rng, _ZH_PLACES)}吗？"

"""Typo tolerance that never breaks a real word.

A query word is corrected only when it is **no real word**: the catalog does not use it (its English
stem is in no product's search document), English does not know it (``wordfreq`` Zipf frequency below
``SEARCH_REAL_WORD_ZIPF``) and the text tower's own vocabulary does not hold it. "warm", "cold" and
"walk" stay as written, whatever the catalog sells. Words shorter than four letters, and words with
digits, are left alone.

A word that is no real word becomes the closest candidate within one edit (four to seven letters) or
two (eight or more) — Algolia's rule — counting a swap of neighbouring letters as one edit (optimal
string alignment, :mod:`rapidfuzz`). Candidates are the catalog's own words (titles, colours,
patterns, categories, descriptions) and common English words (Zipf 3 or more); at equal distance a
word the catalog uses wins, then one of its colour, pattern or category names ("balck" → "black", not
"back"), then the word more products use. Nothing close: the word stays.

The catalog's part is read from the search database every ``LEXICON_TTL`` seconds; the English and
tower parts once per process.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from dataclasses import dataclass, field

import snowballstemmer
from rapidfuzz import process
from rapidfuzz.distance import OSA
from wordfreq import top_n_list, zipf_frequency

LEXICON_TTL = 300.0
MIN_WORD = 4  # shorter words are left alone ("tee", "top")
ENGLISH_CANDIDATES = 40_000  # the most frequent English words that may replace a typo
DEFAULT_REAL_WORD_ZIPF = 2.0  # once in 10 million words: the ~95,000 most frequent English words
# A replacement the catalog does not use must be a common English word (the 10,000-odd most frequent)
ENGLISH_ONLY_MIN_ZIPF = 3.0
WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
logger = logging.getLogger(__name__)

_stemmer = snowballstemmer.stemmer("english")  # the stemmer PostgreSQL's 'english' configuration uses
_stem_lock = threading.Lock()


def stem(word: str) -> str:
    with _stem_lock:  # the snowball stemmer keeps state between calls
        return _stemmer.stemWord(word.lower())


def max_edits(word: str) -> int:
    return 0 if len(word) < MIN_WORD else 1 if len(word) < 8 else 2


@functools.lru_cache(maxsize=1)
def tower_vocabulary() -> frozenset[str]:
    """Whole words of the text tower's WordPiece vocabulary (empty when the tower is not installed)."""
    try:
        from vision.assets import minilm_dir

        lines = (minilm_dir() / "vocab.txt").read_text(encoding="utf-8").splitlines()
    except Exception:  # the tower missing only makes the check rely on the word list
        return frozenset()
    return frozenset(w for w in lines if w.isalpha() and len(w) >= MIN_WORD)


@functools.lru_cache(maxsize=1)
def english_candidates() -> tuple[tuple[str, ...], tuple[float, ...]]:
    words = tuple(w for w in top_n_list("en", ENGLISH_CANDIDATES) if w.isalpha() and len(w) >= 3)
    return words, tuple(zipf_frequency(w, "en") for w in words)


@dataclass(frozen=True)
class Correction:
    text: str  # the query with every corrected word replaced (the original when nothing changed)
    changes: tuple[tuple[str, str], ...] = ()  # (as typed, corrected)

    @property
    def changed(self) -> bool:
        return bool(self.changes)


@dataclass
class Speller:
    stems: dict[str, int]  # catalog stem -> products using it
    words: list[str]  # candidate replacements
    support: list[int]  # products using each candidate (through its stem)
    frequency: list[float]  # each candidate's English Zipf frequency
    real_word_zipf: float = DEFAULT_REAL_WORD_ZIPF
    salient: frozenset[str] = frozenset()  # words of the catalog's colours, patterns and categories
    _memo: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        stems: dict[str, int],
        catalog_words: set[str],
        real_word_zipf: float = DEFAULT_REAL_WORD_ZIPF,
        salient: set[str] | frozenset[str] = frozenset(),
    ) -> Speller:
        english, zipfs = english_candidates()
        frequency = dict(zip(english, zipfs, strict=True))
        words = sorted({w for w in catalog_words if w.isalpha() and len(w) >= 3} | set(english) | set(salient))
        return cls(
            stems=stems,
            words=words,
            support=[stems.get(stem(w), 0) for w in words],
            frequency=[frequency.get(w) or zipf_frequency(w, "en") for w in words],
            real_word_zipf=real_word_zipf,
            salient=frozenset(salient),
        )

    def in_catalog(self, word: str) -> bool:
        return stem(word) in self.stems

    def is_real(self, word: str) -> bool:
        """The catalog uses it, English knows it or the text tower's vocabulary holds it."""
        word = word.lower()
        return self.in_catalog(word) or zipf_frequency(word, "en") >= self.real_word_zipf or word in tower_vocabulary()

    def correct(self, word: str) -> str:
        """``word`` itself when it is real (or short, or not all letters); else the closest candidate
        within the allowed edits, or ``word`` when none is that close."""
        lower = word.lower()
        if len(lower) < MIN_WORD or not lower.isalpha() or self.is_real(lower):
            return word
        if lower in self._memo:
            return self._memo[lower]
        limit = max_edits(lower)
        found = [
            hit
            for hit in process.extract(lower, self.words, scorer=OSA.distance, score_cutoff=limit, limit=None)
            if self.support[hit[2]] or self.frequency[hit[2]] >= ENGLISH_ONLY_MIN_ZIPF
        ]
        best = min(
            found,
            key=lambda hit: (
                hit[1],
                self.support[hit[2]] == 0,
                hit[0] not in self.salient,
                -self.support[hit[2]],
                -self.frequency[hit[2]],
                hit[0],
            ),
            default=None,
        )
        corrected = best[0] if best is not None else word
        if len(self._memo) < 10_000:
            self._memo[lower] = corrected
        return corrected

    def correct_query(self, query: str) -> Correction:
        changes: list[tuple[str, str]] = []

        def fix(match: re.Match[str]) -> str:
            typed = match.group(0)
            corrected = self.correct(typed)
            if corrected.lower() != typed.lower():
                changes.append((typed, corrected))
                return corrected
            return typed

        text = WORD.sub(fix, query)
        return Correction(text, tuple(changes))


_lock = threading.Lock()
_cache: dict[str, tuple[float, Speller]] = {}
_rebuilding: set[str] = set()


def _build(using: str) -> Speller:
    from django.conf import settings

    from catalog.selectors import attribute_vocabulary, keyword_lexicon, keyword_surface_words

    salient = {
        word for values in attribute_vocabulary(using).values() for value in values for word in WORD.findall(value)
    }
    return Speller.build(keyword_lexicon(using), keyword_surface_words(using), settings.SEARCH_REAL_WORD_ZIPF, salient)


def _rebuild(using: str) -> None:
    from django.db import connections

    try:
        built = _build(using)
        with _lock:
            _cache[using] = (time.monotonic(), built)
    except Exception:
        logger.exception("the spelling lexicon was not rebuilt; the previous one keeps serving")
    finally:
        connections.close_all()  # this thread's connections
        with _lock:
            _rebuilding.discard(using)


def speller(using: str) -> Speller:
    """The speller for this database alias. The first call builds it; once it is ``LEXICON_TTL``
    seconds old, a background thread builds the next one while this one keeps answering."""
    with _lock:
        entry = _cache.get(using)
        stale = entry is not None and time.monotonic() - entry[0] > LEXICON_TTL
        if stale and using not in _rebuilding:
            _rebuilding.add(using)
            threading.Thread(target=_rebuild, args=(using,), name="speller-rebuild", daemon=True).start()
        if entry is not None:
            return entry[1]
    built = _build(using)
    with _lock:
        _cache[using] = (time.monotonic(), built)
    return built


def speller_reset() -> None:
    with _lock:
        _cache.clear()

"""Typo tolerance for keyword search: query words the catalog does not contain are replaced by the
closest catalog word, found through a trigram index of the catalog's own vocabulary.

The bundled PostgreSQL (pgserver) has no ``pg_trgm``; this does the same job in the process: the
words come from ``ts_stat`` over the active catalog (refreshed every ``LEXICON_TTL`` seconds), a
candidate must share trigrams with the typo (Jaccard ≥ ``MIN_TRIGRAM_SIMILARITY``) and lie within
``MAX_EDITS`` edits of it; ties go to the word more products use.
"""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

LEXICON_TTL = 300.0
MIN_WORD = 4  # shorter words are left alone ("tee", "top")
MAX_EDITS = 2
MIN_TRIGRAM_SIMILARITY = 0.15
WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def trigrams(word: str) -> set[str]:
    padded = f"  {word} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


def edit_distance(a: str, b: str, limit: int = MAX_EDITS) -> int:
    """Levenshtein distance, giving up (returning ``limit + 1``) once it must exceed ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if min(current) > limit:
            return limit + 1
        previous = current
    return previous[-1]


@dataclass
class Lexicon:
    words: dict[str, int]  # word -> products using it
    index: dict[str, list[str]]  # trigram -> words

    @classmethod
    def build(cls, words: dict[str, int]) -> Lexicon:
        index: dict[str, list[str]] = defaultdict(list)
        for word in words:
            if word.isalpha():
                for gram in trigrams(word):
                    index[gram].append(word)
        return cls(words, dict(index))

    def known(self, word: str) -> bool:
        """In the lexicon, as is or as a likely stem (the lexicon holds English stems: "striped" is
        known through "stripe", "dresses" through "dress")."""
        if word in self.words:
            return True
        return any(word[:-n] in self.words for n in (1, 2, 3) if len(word) - n >= MIN_WORD - 1) or (
            word.endswith("y") and word[:-1] + "i" in self.words
        )

    def correct(self, word: str) -> str:
        """The word itself when the catalog knows it (or it is short); else the closest catalog word,
        or the word unchanged when nothing is close."""
        word = word.lower()
        if len(word) < MIN_WORD or not word.isalpha() or self.known(word):
            return word
        grams = trigrams(word)
        shared: dict[str, int] = defaultdict(int)
        for gram in grams:
            for candidate in self.index.get(gram, ()):
                shared[candidate] += 1
        best: tuple[int, int, str] | None = None
        for candidate, common in shared.items():
            jaccard = common / (len(grams) + len(trigrams(candidate)) - common)
            if jaccard < MIN_TRIGRAM_SIMILARITY:
                continue
            edits = edit_distance(word, candidate)
            if edits > MAX_EDITS:
                continue
            key = (edits, -self.words[candidate], candidate)
            if best is None or key < best:
                best = key
        return best[2] if best else word

    def correct_query(self, query: str) -> str:
        return WORD.sub(lambda m: m.group(0) if self.known(m.group(0).lower()) else self.correct(m.group(0)), query)


_lock = threading.Lock()
_cache: dict[str, tuple[float, Lexicon]] = {}


def lexicon(using: str) -> Lexicon:
    """The catalog's lexicon for this database alias, rebuilt when older than ``LEXICON_TTL``."""
    from catalog.selectors import keyword_lexicon

    with _lock:
        entry = _cache.get(using)
        if entry is None or time.monotonic() - entry[0] > LEXICON_TTL:
            entry = (time.monotonic(), Lexicon.build(keyword_lexicon(using)))
            _cache[using] = entry
        return entry[1]


def lexicon_reset() -> None:
    with _lock:
        _cache.clear()

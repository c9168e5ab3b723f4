"""Typo tolerance that never breaks a real word (search.spelling), without a database: the catalog's
words are given here."""

from __future__ import annotations

import pytest
from wordfreq import top_n_list

from search.spelling import Speller, max_edits, stem

CATALOG_WORDS = {
    "black", "dress", "jacket", "trousers", "shirt", "striped", "balconette", "bra", "jumper", "knitted",
    "swimsuit", "beachwear", "warm", "cotton", "jersey", "denim", "sneakers", "wool", "hoodie",
}  # fmt: skip


@pytest.fixture(scope="module")
def speller() -> Speller:
    stems = {stem(w): 3 for w in CATALOG_WORDS}
    return Speller.build(stems, CATALOG_WORDS, real_word_zipf=2.0)


def test_no_correctly_spelt_english_word_is_rewritten(speller):
    """The 50,000 most frequent English words (four letters or more) all stay as written, whether the
    catalog uses them or not."""
    words = [w for w in top_n_list("en", 50_000) if w.isalpha() and len(w) >= 4]
    assert len(words) > 35_000
    rewritten = {w: speller.correct(w) for w in words if speller.correct(w) != w}
    assert rewritten == {}


def test_the_reported_sentence_is_left_alone(speller):
    # reported: rewritten to "something wash for a hold bitter wale", with a "did you mean"
    correction = speller.correct_query("something warm for a cold winter walk")
    assert correction.text == "something warm for a cold winter walk" and not correction.changed


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("blakc dress", "black dress"),  # swapped letters are one edit
        ("jakcet", "jacket"),
        ("trousres", "trousers"),
        ("shrit", "shirt"),
        ("balconete bra", "balconette bra"),  # a catalog word English does not know
        ("knittted jumper", "knitted jumper"),
        ("beachwaer", "beachwear"),
        ("Blakc Dress", "black Dress"),  # the corrected word in lower case, the rest as typed
    ],
)
def test_typos_become_the_closest_catalog_or_english_word(speller, typed, meant):
    correction = speller.correct_query(typed)
    assert correction.text == meant and correction.changed


def test_what_is_left_alone(speller):
    for query in ("xqzv plmk", "tee", "top", "501 jeans", "asdfgh"):  # nonsense, short words, digits
        assert speller.correct_query(query).text == query
    # one edit allowed from four letters, two from eight
    assert [max_edits(w) for w in ("top", "warm", "sweater", "trousers")] == [0, 1, 1, 2]
    assert speller.correct("jckt") == "jckt"  # two edits from "jacket": too far for four letters
    assert speller.correct("trouzars") == "trousers"  # two edits, eight letters or more


def test_a_colour_pattern_or_category_name_wins_a_tie_with_another_catalog_word():
    """ "balck" is one edit from "black" (a swap) and from "back" (a letter dropped); descriptions say
    "back" more often ("buttons at the back"), but shoppers type colours."""
    words = {"black", "back", "white", "wide", "top"}
    stems = {stem("black"): 5, stem("back"): 40, stem("white"): 5, stem("wide"): 30, stem("top"): 9}
    speller = Speller.build(stems, words, real_word_zipf=2.0, salient={"black", "white", "top"})
    assert speller.correct_query("balck top").text == "black top"
    assert speller.correct_query("wite top").text == "white top"
    plain = Speller.build(stems, words, real_word_zipf=2.0)  # without the names: the commoner word
    assert plain.correct("balck") == "back"

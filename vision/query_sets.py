"""Search queries of every kind a shopper types, built from the articles of one split (train or dev),
never from anything else. Relevance comes from the articles' own labels: product type, department
(H&M ``index_group``), colour, pattern, title and price.

Kinds (the ``family`` of each query):

- ``attribute`` — "<colour> <pattern> <type>" and "<colour> <type>" (built by
  :func:`evaluation.evalsets.attribute_queries`, passed in);
- ``natural`` — requests in the shopper's words ("something to wear to the beach"), written here: each
  *intent* names the product types (and departments) that answer it and has several phrasings, half of
  them used for the train split and half for dev, so tuning never sees a dev phrasing;
- ``attribute-typo`` and ``natural-typo`` — the same queries with one typo in one word of four letters
  or more (a swap of neighbouring letters, a letter dropped, doubled or replaced), never one that makes
  another real English word;
- ``navigational`` — an article's title → the articles with that title;
- ``department`` — "men's trousers", "baby clothes", "women's swimwear";
- ``price`` — "dresses under 30 euros": relevant = that type at or below the bound; every result must obey
  the bound (``"price_max"`` in the query);
- ``nonsense`` — strings no shop sells (``"relevant": []``): the shop should say it found no match rather
  than "correct" them into something else.

Only queries with at least ``min_relevant`` relevant articles (default 10, so P@10 can reach 1) are kept,
except navigational ones (one right answer).
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from wordfreq import zipf_frequency

# A typo must not make another English word ("black" → "back"): its Zipf frequency stays below this.
REAL_WORD_ZIPF = 2.0  # the shop's own line (settings.SEARCH_REAL_WORD_ZIPF)


@dataclass(frozen=True)
class Intent:
    name: str
    phrasings: tuple[str, ...]  # even positions: train; odd: dev
    types: frozenset[str] = frozenset()  # H&M product types that answer it (empty: any type)
    groups: frozenset[str] = frozenset()  # H&M index groups that answer it (empty: any)


def _types(*names: str) -> frozenset[str]:
    return frozenset(names)


SWIM = _types("Swimsuit", "Bikini top", "Swimwear bottom", "Sarong")
WARM = _types(
    "Sweater",
    "Jacket",
    "Coat",
    "Hat/beanie",
    "Beanie",
    "Scarf",
    "Gloves",
    "Outdoor Waistcoat",
    "Cardigan",
    "Hoodie",
    "Boots",
    "Outdoor overall",
    "Outdoor trousers",
)
SLEEP = _types("Pyjama set", "Pyjama bottom", "Pyjama jumpsuit/playsuit", "Night gown", "Robe")
SMART = _types("Blazer", "Shirt", "Tailored Waistcoat", "Tie", "Blouse", "Trousers")
JEWELLERY = _types("Earring", "Earrings", "Necklace", "Ring", "Bracelet")
HAIR = _types("Hair/alice band", "Hair string", "Hair clip", "Hair ties")
FEET = _types(
    "Sneakers",
    "Boots",
    "Sandals",
    "Heeled sandals",
    "Ballerinas",
    "Wedge",
    "Other shoe",
    "Flat shoe",
    "Flat shoes",
    "Pumps",
    "Slippers",
    "Flip flop",
    "Heels",
)
SUMMER_FEET = _types("Sandals", "Heeled sandals", "Flip flop", "Wedge", "Ballerinas")
BAGS = _types("Bag", "Cross-body bag", "Weekend/Gym bag", "Wallet")
UNDER = _types("Bra", "Underwear bottom", "Underwear body", "Underwear Tights", "Kids Underwear top")
LEGS = _types("Leggings/Tights", "Underwear Tights", "Socks")
HEADWEAR = _types("Hat/beanie", "Beanie", "Hat/brim", "Cap/peaked", "Felt hat", "Cap")
ONE_PIECE = _types("Dress", "Jumpsuit/Playsuit")
LEGWEAR = _types("Trousers", "Shorts", "Leggings/Tights", "Skirt", "Dungarees", "Outdoor trousers")
TOPS = _types("T-shirt", "Top", "Vest top", "Blouse", "Shirt", "Polo shirt")
KNIT = _types("Sweater", "Cardigan", "Hoodie")

INTENTS: tuple[Intent, ...] = (
    Intent(
        "beach",
        (
            "something to wear to the beach",
            "what to wear at the pool",
            "swimming costume for my holiday",
            "beachwear for a sunny holiday",
        ),
        SWIM,
    ),
    Intent(
        "winter",
        (
            "something warm for a cold winter walk",
            "clothes to keep me warm in the snow",
            "warm things for winter",
            "keep warm when it is freezing outside",
        ),
        WARM,
    ),
    Intent(
        "sleep",
        ("something to sleep in", "comfy clothes for bed", "pyjamas for the night", "nightwear to sleep in"),
        SLEEP,
    ),
    Intent(
        "office",
        (
            "an outfit for a job interview",
            "smart clothes for the office",
            "formal work clothes",
            "something smart for a business meeting",
        ),
        SMART,
    ),
    Intent(
        "jewellery",
        (
            "a piece of jewellery as a gift",
            "something sparkly to wear on my ears",
            "jewellery for a night out",
            "gold jewellery",
        ),
        JEWELLERY,
    ),
    Intent(
        "hair",
        (
            "something for my hair",
            "something to hold my hair back",
            "hair accessories",
            "something to tie up long hair",
        ),
        HAIR,
    ),
    Intent(
        "feet",
        ("something to wear on my feet", "footwear for walking", "new shoes", "comfortable shoes for every day"),
        FEET,
    ),
    Intent(
        "summer-feet",
        (
            "open shoes for hot summer days",
            "shoes for the summer",
            "summer shoes for the beach",
            "light open shoes for a holiday",
        ),
        SUMMER_FEET,
    ),
    Intent(
        "carry",
        (
            "something to carry my things in",
            "a bag for my phone and keys",
            "a bag to take to work",
            "something to hold my wallet and keys",
        ),
        BAGS,
    ),
    Intent("lingerie", ("lingerie", "underwear for women", "something to wear under my clothes", "undies"), UNDER),
    Intent(
        "legs",
        ("something to keep my legs warm", "tights for under a skirt", "something for cold legs", "socks and tights"),
        LEGS,
    ),
    Intent(
        "head",
        ("something to wear on my head", "a hat for the sun", "something to keep my head warm", "headwear"),
        HEADWEAR,
    ),
    Intent(
        "party",
        (
            "something to wear to a party",
            "an outfit for a wedding",
            "a dress for a night out",
            "something pretty for a summer evening",
        ),
        ONE_PIECE,
    ),
    Intent(
        "gym",
        ("clothes for the gym", "something to go running in", "workout clothes", "something to wear for yoga"),
        groups=frozenset({"Sport"}),
    ),
    Intent(
        "bottoms",
        (
            "something to wear on my legs",
            "trousers or a skirt for every day",
            "bottoms for everyday",
            "something to go with a top",
        ),
        LEGWEAR,
    ),
    Intent(
        "cosy",
        ("something cosy to wear at home", "a knitted jumper", "something soft and knitted", "a cosy layer for autumn"),
        KNIT,
    ),
    Intent(
        "tops",
        (
            "a casual top for the summer",
            "something to wear on top with jeans",
            "a light top for warm days",
            "something simple for my upper body",
        ),
        TOPS,
    ),
)

DEPARTMENTS = {  # phrasings → the H&M index groups a shopper means
    "men's": frozenset({"Menswear"}),
    "mens": frozenset({"Menswear"}),
    "for men": frozenset({"Menswear"}),
    "women's": frozenset({"Ladieswear", "Divided"}),
    "ladies": frozenset({"Ladieswear", "Divided"}),
    "for women": frozenset({"Ladieswear", "Divided"}),
    "kids": frozenset({"Baby/Children"}),
    "children's": frozenset({"Baby/Children"}),
    "baby": frozenset({"Baby/Children"}),
}
# a department query names a department and a kind of product, in a shopper's words
DEPARTMENT_NOUNS = {
    "clothes": frozenset(),
    "underwear": _types("Bra", "Underwear bottom", "Underwear body", "Underwear Tights", "Kids Underwear top"),
    "trousers": _types("Trousers"),
    "t-shirts": _types("T-shirt"),
    "shirts": _types("Shirt"),
    "jumpers": _types("Sweater"),
    "jackets": _types("Jacket", "Coat"),
    "dresses": _types("Dress"),
    "swimwear": SWIM,
    "socks": _types("Socks"),
    "shoes": FEET,
    "accessories": frozenset({"*Accessories"}),  # the category group
}
PRICE_NOUNS = {
    "dresses": _types("Dress"),
    "trousers": _types("Trousers"),
    "jumpers": _types("Sweater"),
    "t-shirts": _types("T-shirt"),
    "tops": _types("Top", "Vest top"),
    "skirts": _types("Skirt"),
    "jackets": _types("Jacket"),
    "blouses": _types("Blouse"),
    "shirts": _types("Shirt"),
    "bras": _types("Bra"),
}
PRICE_PHRASES = ("{noun} under {n} euros", "{noun} below {n}", "{noun} for less than {n} €", "{noun} under €{n}")
NONSENSE = (
    "lawn mower blade",
    "carburettor gasket",
    "quantum chromodynamics lecture",
    "garden hose reel",
    "printer toner cartridge",
    "xqzv plmk",
    "bnrtw",
    "zzyzx qwop",
    "asdfgh jkl",
    "oil filter for diesel engine",
    "tax return form",
    "kitchen tap washer",
    "hamster cage",
    "vbnmq wert",
    "cement mixer hire",
)


def is_real_word(word: str) -> bool:
    return zipf_frequency(word, "en") >= REAL_WORD_ZIPF


def typo(word: str, rng: random.Random, tries: int = 20) -> str | None:
    """One typo in ``word`` (four letters or more) that is not itself a real word, or None."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    for _ in range(tries):
        i = rng.randrange(1, len(word) - 1) if len(word) > 2 else 0
        kind = rng.choice(("swap", "drop", "double", "replace"))
        if kind == "swap":
            out = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        elif kind == "drop":
            out = word[:i] + word[i + 1 :]
        elif kind == "double":
            out = word[:i] + word[i] + word[i:]
        else:
            out = word[:i] + rng.choice(letters.replace(word[i], "")) + word[i + 1 :]
        if out != word and not is_real_word(out):
            return out
    return None


STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "at",
        "for",
        "in",
        "my",
        "of",
        "on",
        "the",
        "to",
        "with",
        "something",
        "what",
        "some",
        "when",
        "it",
        "is",
        "me",
        "things",
        "wear",
    ]
)


def with_typo(text: str, rng: random.Random) -> str | None:
    """``text`` with one typo in one of its content words of four letters or more, or None."""
    words = text.split()
    candidates = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha() and w not in STOPWORDS]
    rng.shuffle(candidates)
    for i in candidates:
        changed = typo(words[i], rng)
        if changed:
            return " ".join([*words[:i], changed, *words[i + 1 :]])
    return None


def _matches(row: dict[str, str], types: frozenset[str], groups: frozenset[str]) -> bool:
    type_ok = (
        not types
        or row["category"] in types
        or any(t.startswith("*") and row["category_group"] == t[1:] for t in types)
    )
    return type_ok and (not groups or row["index_group"] in groups)


def natural_queries(rows: list[dict[str, str]], split: str, min_relevant: int) -> list[dict[str, Any]]:
    first = 0 if split == "train" else 1
    out = []
    for intent in INTENTS:
        relevant = sorted(r["item_id"] for r in rows if _matches(r, intent.types, intent.groups))
        if len(relevant) < min_relevant:
            continue
        for j, text in enumerate(intent.phrasings[first::2]):
            out.append(
                {
                    "id": f"natural-{intent.name}-{j}",
                    "family": "natural",
                    "intent": intent.name,
                    "text": text,
                    "relevant": relevant,
                }
            )
    return out


def department_queries(rows: list[dict[str, str]], seed: int, min_relevant: int) -> list[dict[str, Any]]:
    out = []
    for dept, groups in DEPARTMENTS.items():
        for noun, types in DEPARTMENT_NOUNS.items():
            relevant = sorted(r["item_id"] for r in rows if _matches(r, types, groups))
            if len(relevant) >= min_relevant:
                text = f"{noun} {dept}" if dept.startswith("for ") else f"{dept} {noun}"
                out.append(
                    {
                        "id": f"department-{dept}-{noun}".replace(" ", "-").replace("'", ""),
                        "family": "department",
                        "text": text,
                        "relevant": relevant,
                    }
                )
    rng = random.Random(f"{seed}:department")
    return sorted(rng.sample(out, min(len(out), 30)), key=lambda q: q["id"])


def price_queries(rows: list[dict[str, str]], seed: int, min_relevant: int) -> list[dict[str, Any]]:
    rng = random.Random(f"{seed}:price")
    out = []
    for noun, types in PRICE_NOUNS.items():
        prices = sorted(float(r["price"]) for r in rows if _matches(r, types, frozenset()))
        for bound in (15, 20, 25, 30, 40, 50):
            relevant = sorted(
                r["item_id"] for r in rows if _matches(r, types, frozenset()) and float(r["price"]) <= bound
            )
            if len(relevant) >= min_relevant and len(relevant) < len(prices):  # the bound must matter
                text = rng.choice(PRICE_PHRASES).format(noun=noun, n=bound)
                out.append(
                    {
                        "id": f"price-{noun}-{bound}",
                        "family": "price",
                        "text": text,
                        "price_max": bound,
                        "relevant": relevant,
                    }
                )
                break
    return out


def navigational_queries(rows: list[dict[str, str]], seed: int, count: int = 100) -> list[dict[str, Any]]:
    by_title: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        title = " ".join(r["title"].split())
        if title:
            by_title[title.lower()].append(r["item_id"])
    # a title four or fewer articles share names a product, not a kind of product
    titles = sorted(t for t, ids in by_title.items() if len(ids) <= 4 and re.search(r"[a-z]{3}", t))
    chosen = random.Random(f"{seed}:navigational").sample(titles, min(count, len(titles)))
    original = {" ".join(r["title"].split()).lower(): " ".join(r["title"].split()) for r in rows}
    return [
        {"id": f"navigational-{i:03d}", "family": "navigational", "text": original[t], "relevant": sorted(by_title[t])}
        for i, t in enumerate(sorted(chosen))
    ]


def typo_queries(queries: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    rng = random.Random(f"{seed}:typo")
    out = []
    for q in queries:
        changed = with_typo(q["text"], rng)
        if changed:
            out.append(
                {
                    **q,
                    "id": q["id"] + "-typo",
                    "family": q["family"] + "-typo",
                    "text": changed,
                    "spelt_right": q["text"],
                }
            )
    return out


def search_queries(
    rows: list[dict[str, str]],
    attribute: list[dict[str, Any]],
    split: str,
    seed: int = 0,
    min_relevant: int = 10,
) -> list[dict[str, Any]]:
    """Every kind of query for the articles ``rows`` (one split; each row needs ``item_id``,
    ``category``, ``category_group``, ``index_group``, ``title`` and ``price``)."""
    attribute = [{**q, "family": "attribute", "shape": q.get("family")} for q in attribute]
    natural = natural_queries(rows, split, min_relevant)
    nonsense = [
        {"id": f"nonsense-{i:02d}", "family": "nonsense", "text": t, "relevant": []} for i, t in enumerate(NONSENSE)
    ]
    return [
        *attribute,
        *typo_queries(attribute, seed),
        *natural,
        *typo_queries(natural, seed),
        *navigational_queries(rows, seed),
        *department_queries(rows, seed, min_relevant),
        *price_queries(rows, seed, min_relevant),
        *nonsense,
    ]

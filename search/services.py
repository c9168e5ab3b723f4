"""Search: text queries over image vectors, product-text vectors and keywords, fused, filtered and
faceted; photo queries through the garment parser. Used by the storefront, the API and
``evaluate search``. Reads only (catalog data through ``catalog.selectors``).

Signals for a text query (each can be asked for alone):

* ``image`` – the query's text vector against the products' image vectors (CLIP-style: the
  pictures alone, no titles or descriptions);
* ``text`` – the query's text vector against the products' text vectors (title, description,
  attributes);
* ``keyword`` – PostgreSQL full-text search over title, description, colour, pattern, category;
* ``attributes`` – the catalog's own colour, pattern and category names recognised in the query
  ("black striped t-shirt" → colour black, pattern striped, category t-shirt): products matching
  more of them rank higher.

Before any signal runs, words that are no real word are corrected (:mod:`search.spelling`); every
signal reads the corrected query. ``hybrid`` fuses the lists by weighted reciprocal-rank fusion (RRF, k = 60; weights in
:data:`FUSION_WEIGHTS`). Filters (category with descendants, price range, size in stock, colour,
pattern, in stock) apply inside every signal, so a selective filter still fills the page (see
:func:`catalog.selectors.vector_nearest`). Query vectors are cached per model; no model work runs
inside a database transaction.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from django.conf import settings
from django.db import InterfaceError, OperationalError, connections
from PIL import Image

from catalog import selectors as catalog_selectors
from catalog.models import EmbeddingSpace
from catalog.selectors import ProductFilters
from search.caching import catalog_fact, catalog_facts_reset
from search.fact_memory import ProductFacts
from search.spelling import speller
from search.understanding import PART_KEYS, Part, Understood, understand_query
from vision.images import resized_to_long_side

if TYPE_CHECKING:
    from vision.parsing import Parser

logger = logging.getLogger(__name__)

SIGNALS = ("image", "text", "keyword", "attributes", "categories", "predicted")
# What a search combines unless told otherwise. ``predicted`` (attributes read from the photos) is
# the image-only index's word signal: asked for by name (see evaluation/search.py).
DEFAULT_SIGNALS = ("image", "text", "keyword", "attributes", "categories")
RRF_K = 60
# Relative weight of each signal in the fusion, tuned on the H&M dev attribute queries by
# `evaluate search --tune-fusion` (grid 0–3 for image, text, attributes; keyword fixed at 1): P@10
# 0.972 against 0.916 with equal weights. Change them only on evidence from a dev split.
FUSION_WEIGHTS = {
    "image": 0.25, "text": 0.5, "keyword": 1.0, "attributes": 3.0, "categories": 1.0, "predicted": 3.0,
}  # fmt: skip
# ``predicted`` is weighted like ``attributes`` (both name what the query asks for), not tuned.
POOL = 100  # candidates each signal contributes before fusion
CATEGORY_MATCHES = 3  # the catalog categories nearest a query in meaning that the categories signal reads
# ... each at least this close (cosine of sentence vectors). Chosen on the train queries: every natural
# request's nearest category is at 0.37 or more; the median nonsense query's at 0.31.
CATEGORY_MIN_SIMILARITY = 0.35
RESULT_SET = 200  # products a fused search ranks (pages and facets cover these)
MAX_QUERY_CHARS = 200
PRICE_BANDS = ((0, 20), (20, 50), (50, 100), (100, 200), (200, None))


@dataclass
class Hit:
    product_id: int
    score: float
    signals: dict[str, int] = field(default_factory=dict)  # signal -> rank (1-based)


@dataclass
class SearchResult:
    hits: list[Hit]  # this page
    total: int  # products in the whole ranked result set
    page: int
    page_size: int
    facets: dict[str, list[tuple[str, int]]]
    query: str
    corrected_query: str = ""  # set when typo correction changed the query and found it with every word
    note: str = ""
    understood: list[Part] = field(default_factory=list)  # chips: what became a filter or a boost
    ignored: list[str] = field(default_factory=list)  # understood parts the shopper undid

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def _space() -> EmbeddingSpace | None:
    """The active space, read again at most every SEARCH_MEMORY_REFRESH_S seconds (a switch reaches
    every process within that; a search reads it once, so it never mixes spaces)."""
    return catalog_fact(
        "active_space",
        lambda: catalog_selectors.embedding_space_active(EmbeddingSpace.Modality.IMAGE_TEXT),
        ttl=settings.SEARCH_MEMORY_REFRESH_S,
    )


_query_lock = threading.Lock()


@functools.lru_cache(maxsize=4096)
def _encode_cached(space: EmbeddingSpace, text: str) -> tuple[tuple[float, ...], tuple[float, ...] | None]:
    """The query's vector in the space, and the text tower's own sentence vector (None when it has
    none), from one pass of the tower."""
    from lifecycle.serving import query_embedder_for_space

    emb = query_embedder_for_space(space)  # the model that wrote the space, never another
    with _query_lock:  # one encoder, many request threads
        shared, sentence = emb.encode_texts_and_sentences([text])
    return tuple(float(x) for x in shared[0]), None if sentence is None else tuple(float(x) for x in sentence[0])


def encode_query_text(text: str, space: EmbeddingSpace | None = None) -> np.ndarray:
    """The query's text vector by the model of ``space`` (default: the active space), from an
    in-process cache keyed by the space and the text."""
    space = space or _space()
    if space is None:
        raise LookupError("no embedding space is active yet")
    return np.asarray(_encode_cached(space, text.strip().lower())[0], dtype=np.float32)


def models_served() -> dict[str, object]:
    """Which models answer searches now (the API and the pages say it): the active parser and the
    embedder of the active space, and whether each is a fallback. Read again at most every
    SEARCH_MEMORY_REFRESH_S seconds, like the active space (two queries a request otherwise)."""
    from lifecycle import selectors as lifecycle_selectors
    from lifecycle.models import ModelKind

    space = _space()

    def load() -> dict[str, object]:
        parser = lifecycle_selectors.version_active(ModelKind.PARSER)
        embedder = lifecycle_selectors.version_get(ModelKind.EMBEDDER, space.name) if space else None
        return {
            "parser": parser.version if parser else None,
            "parser_fallback": bool(parser and parser.fallback),
            "embedder": embedder.version if embedder else None,
            "embedder_fallback": bool(embedder is None or embedder.fallback),
        }

    key = f"models served:{space.pk if space else None}"
    return dict(catalog_fact(key, load, ttl=settings.SEARCH_MEMORY_REFRESH_S))


def _semantic_kinds(kinds: list[str], space: EmbeddingSpace | None) -> list[str]:
    """The vector signals a space can answer: none without a space; the untrained bootstrap embedder's
    text and image vectors share no space, so a query's text vector is only compared with product texts."""
    from lifecycle.serving import embedder_trained

    if space is None:
        return []
    trained = catalog_fact(
        f"trained:{space.pk}:{space.name}", lambda: embedder_trained(space), ttl=settings.SEARCH_MEMORY_REFRESH_S
    )
    if "image" in kinds and not trained:
        return [k for k in kinds if k != "image"]
    return kinds


def vector_signal(
    vector: Sequence[float] | np.ndarray,
    kind: str,
    limit: int,
    filters: ProductFilters | None = None,
    matching: catalog_selectors.FilterMatch | None = None,
    *,
    space: EmbeddingSpace | None = None,
    ef_search: int | None = None,
    categories: catalog_selectors.CategoryGate | None = None,
    max_scan_tuples: int | None = None,
) -> list[Hit]:
    """The ``limit`` products whose ``kind`` vectors are nearest ``vector``, within ``filters``.
    ``ef_search``: the candidate list of an unfiltered index lookup (default :func:`hnsw_ef_search`);
    ``categories`` and ``max_scan_tuples``: a gate tested as the index scan goes on
    (``catalog.selectors.vector_nearest``), not applied where a filter leaves few enough products to
    score exactly."""
    space = space or _space()
    if space is None:
        return []
    if filters is not None and filters.active():
        matching = matching or catalog_selectors.product_filter_match(filters)
        if matching.ids is not None:  # few enough to score exactly (in memory when kept there)
            return vector_signals_exact(vector, [kind], limit, matching.ids, space=space)[kind]
        # the iterative scan goes on past its first candidate list by itself: a longer one only costs time
        ef_search = 100
    else:  # the candidate list recall needs at the catalog's size
        ef_search = ef_search or hnsw_ef_search()
    hits = catalog_selectors.vector_nearest(
        table="product",
        space=space,
        kind=kind,
        query=list(vector),
        k=limit,
        ef_search=max(ef_search, limit),
        filters=filters,
        matching=matching,
        categories=categories,
        max_scan_tuples=max_scan_tuples,
    )
    return _vector_hits(kind, hits)


# Up to this many product vector rows (all spaces: 500,000 products with an image and a text vector)
# the short candidate lists below keep recall@10 above 0.97; above it the long ones are needed.
# Measured on catalogs copied from real articles (bench.search, 100 real product photos no product
# copies, and 100 shoppers' words, each against exact search): at 100,000 products photos 0.986–0.991 at
# ef_search 100, 0.995–1.000 at 200 (two runs); at a million products photos 0.885 at 100, 0.957 at 200, 0.982 at 400,
# 0.993 at 800; words (a text vector looked up among image vectors, which lie apart from it)
# 0.812 / 0.870 / 0.911 at 200 / 400 / 800.
LARGE_INDEX_ROWS = 1_000_000


def hnsw_ef_search() -> int:
    """ef_search of an unfiltered lookup of a shopper's words: 200, or 800 on a large index (the
    words' recall 0.911 there; 400 would save 3 ms a lookup for 0.870)."""
    return _ef_search_by_size(200, 800)


def photo_ef_search() -> int:
    """ef_search of a photo's garment lookups (image vectors among image vectors, an easier search,
    and a photo search's two or three lookups have their own latency target): 100, or 800 on a large
    index, the shortest lists with recall@10 ≥ 0.97 (at a million products 400 sufficed for one
    embedder, 0.982, and not for the next one a fresh clone trained, 0.945; 800 gave 0.993 / 0.989)."""
    return _ef_search_by_size(100, 800)


def _ef_search_by_size(small: int, large: int) -> int:
    """``SHOP_SEARCH_HNSW_EF_SEARCH`` when set, else ``small`` or ``large`` by the size of the vector
    table (the planner's estimate, read at most every few minutes)."""
    if settings.SEARCH_HNSW_EF_SEARCH > 0:
        return int(settings.SEARCH_HNSW_EF_SEARCH)
    rows = catalog_fact("vector_rows", catalog_selectors.product_vector_rows_estimate, VOCABULARY_TTL_S)
    return large if rows > LARGE_INDEX_ROWS else small


def _vector_hits(kind: str, neighbours: Sequence[catalog_selectors.Neighbour]) -> list[Hit]:
    return [Hit(h.owner_id, 1.0 - h.distance, {kind: rank}) for rank, h in enumerate(neighbours, start=1)]


def vector_signals_exact(
    vector: Sequence[float] | np.ndarray,
    kinds: Sequence[str],
    limit: int,
    product_ids: Sequence[int],
    *,
    space: EmbeddingSpace | None = None,
) -> dict[str, list[Hit]]:
    """Several vector signals at once over a known (filtered) set of products, scanned exactly
    (``space``: the active image–text space, read here when not given)."""
    from search.vector_memory import memory_vectors

    space = space or _space()
    if space is None:
        return {kind: [] for kind in kinds}
    if set(kinds) - {"image", "text"}:
        raise ValueError(f"kinds must be some of ('image', 'text'), not {list(kinds)}")
    memory = memory_vectors(space)
    if memory is not None:
        found = memory.nearest(vector, kinds, product_ids, limit)
    else:
        found = catalog_selectors.product_vectors_nearest_exact(
            space=space, kinds=kinds, query=list(vector), product_ids=product_ids, k=limit
        )
    return {kind: _vector_hits(kind, neighbours) for kind, neighbours in found.items()}


# The "any word" fallback ranks at most this many matching products: on a large catalog a common
# word matches tens of thousands, and ranking them all costs more than a request may.
OR_CANDIDATES = 1000
# Products with every word are ranked up to this many: below it the ranking is exact (every evaluation
# here: the H&M dev catalog has 1,001 products); above it (a common query on a large catalog: "black
# solid dress" matches 17,000 of a million products copied from real articles) the first this many
# the index hands over are ranked, and the vector and attribute signals rank the rest of the catalog.
# Reading and ranking them is most of the signal's cost: at a million products (bench.search) a whole
# search took p50 / p95 40.7 / 59.2 ms ranking up to 5,000, 33.0 / 45.8 at 2,000, 31.6 / 47.8 at 1,000.
ALL_WORDS_CANDIDATES = 2000


def _candidate_cap(cap: int, matching: catalog_selectors.FilterMatch | None) -> int:
    """How many rows the "some of the attributes" fallback may rank: ``cap`` on the whole catalog;
    every match of a selective filter (no more than EXACT_SCAN_MAX) when one applies — a small cap
    there makes the planner walk the whole table looking for the first few matches."""
    return catalog_selectors.EXACT_SCAN_MAX if matching is not None and matching.ids is not None else cap


def keyword_signal(
    query: str, limit: int, filters: ProductFilters | None = None, *, any_word: bool = True
) -> list[Hit]:
    """Products whose search document has *all* the query's words, best ``ts_rank_cd`` first; then,
    to fill ``limit`` (unless ``any_word`` is off), products with *any* of them (so "black striped
    dress" still finds black dresses), ranked within a bounded candidate set."""
    return keyword_signal_counted(query, limit, filters, any_word)[0]


def keyword_signal_counted(
    query: str, limit: int, filters: ProductFilters | None, any_word: bool = True
) -> tuple[list[Hit], int]:
    """:func:`keyword_signal`, and how many of its hits have every word of the query."""
    words = [w for w in query.replace('"', " ").replace("-", " ").split() if w]
    if not words:
        return [], 0
    where, params = catalog_selectors.product_filter_sql(filters)
    # Under a filter the products with every word are found through the full-text index alone and the
    # filter tested on each (OFFSET 0 keeps the planner from merging the two): left to itself, on a
    # million products it scanned the table for the first 2,000 matches of a price + stock filter
    # (200,000 rows read, 96 ms for "black solid trousers") or AND-ed the text index with a colour
    # index of 130,000 entries (47 ms for "blue solid trousers" under the blue filter).
    fence = "OFFSET 0" if filters is not None and filters.active() else ""
    all_words = f"""
        SELECT id, ts_rank_cd(doc, q) AS rank FROM (
            SELECT p.id, p.search_document AS doc FROM (
                SELECT * FROM catalog_product p0 WHERE p0.search_document @@ websearch_to_tsquery('english', %s) {fence}
            ) p WHERE {where} LIMIT %s
        ) found, websearch_to_tsquery('english', %s) q
        ORDER BY rank DESC, id
        LIMIT %s
    """
    some_words = f"""
        SELECT id, ts_rank_cd(doc, q) AS rank FROM (
            SELECT p.id, p.search_document AS doc FROM catalog_product p, websearch_to_tsquery('english', %s) q
            WHERE {where} AND p.search_document @@ q AND NOT (p.id = ANY(%s)) LIMIT %s
        ) found, websearch_to_tsquery('english', %s) q
        ORDER BY rank DESC, id
        LIMIT %s
    """
    with connections[settings.SEARCH_DB_ALIAS].cursor() as cursor:
        text = " ".join(words)
        cursor.execute(all_words, [text, *params, ALL_WORDS_CANDIDATES, text, limit])
        rows = cursor.fetchall()
        every = len(rows)
        if any_word and len(rows) < limit and len(words) > 1:
            ored = " OR ".join(words)
            seen = [r[0] for r in rows]
            cursor.execute(some_words, [ored, *params, seen, OR_CANDIDATES, ored, limit - len(rows)])
            # below every product with all the words, whatever ts_rank_cd says (a product with some of
            # the words can outscore one with all of them)
            floor = min((float(score) for _, score in rows), default=1.0)
            rows += [(pid, floor * 0.5 * score / (1.0 + score)) for pid, score in cursor.fetchall()]
    hits = [Hit(pid, float(score), {"keyword": rank}) for rank, (pid, score) in enumerate(rows, start=1)]
    return hits, every


VOCABULARY_TTL_S = 300


def _cached_vocabulary(
    name: str, load: Callable[[], dict[str, dict[str, list[Any]]]]
) -> dict[str, dict[str, list[Any]]]:
    """A vocabulary of the search database, read again once it is VOCABULARY_TTL_S seconds old."""
    return catalog_fact(f"vocabulary:{name}", load, VOCABULARY_TTL_S)


def _vocabulary() -> dict[str, dict[str, list[object]]]:
    return _cached_vocabulary("catalog", catalog_selectors.attribute_vocabulary)


def search_warm() -> float:
    """Build what every search reads (the spelling lexicon, the catalog's vocabularies, a query's
    vectors) before the process takes traffic; returns the seconds it took. A failure is logged, never
    raised: the first search then builds them."""
    import time

    started = time.perf_counter()
    try:
        search_text("warm up", limit=1)
    except Exception:
        logger.exception("search not warmed; the first search builds its lexicon")
    return time.perf_counter() - started


def search_caches_reset() -> None:
    """Forget the catalog words this process has cached (the attribute vocabulary and the spelling
    lexicon; both are otherwise re-read every few minutes), e.g. after a bulk import."""
    from search.spelling import speller_reset
    from search.vector_memory import memory_vectors_reset

    catalog_facts_reset()
    speller_reset()
    memory_vectors_reset()


def _literal_phrases(query: str) -> set[str]:
    """The query's words and 2–3 word phrases, lower-cased, as written."""
    words = [w for w in re.split(r"[^\w-]+", query.lower()) if w]
    phrases = set(words)
    for n in (2, 3):
        phrases |= {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}
    return phrases


def _query_phrases(query: str) -> set[str]:
    """The query's words and 2–3 word phrases, lower-cased, each also in plural and singular form,
    and the catalog names they stand for (``SEARCH_SYNONYMS``: "jeans" → "trousers")."""
    phrases = _literal_phrases(query)
    variants = set(phrases)
    for phrase in phrases:
        for suffix in ("s", "es"):
            variants.add(phrase + suffix)
            if phrase.endswith(suffix):
                variants.add(phrase[: -len(suffix)])
    synonyms = settings.SEARCH_SYNONYMS
    return variants | {name for phrase in variants for name in synonyms.get(phrase, ())}


def recognise_attributes(query: str, ignore: frozenset[str] = frozenset()) -> dict[str, list[str]]:
    """Catalog colour / pattern / category values named in the query (whole words or phrases; a
    plural or singular form or a synonym counts), except the kinds in ``ignore``."""
    variants = _query_phrases(query)
    found = {name: sorted(set(values) & variants) for name, values in _vocabulary().items() if name not in ignore}
    return {name: values for name, values in found.items() if values}


def _predicted_vocabulary() -> dict[str, dict[str, list[str]]]:
    def load() -> dict[str, dict[str, list[Any]]]:
        vocabulary: dict[str, dict[str, list[Any]]] = {}
        for name, values in catalog_selectors.predicted_vocabulary().items():
            for value in values:
                vocabulary.setdefault(name, {}).setdefault(value.lower(), []).append(value)
        return vocabulary

    return _cached_vocabulary("predicted", load)


def predicted_signal(query: str, limit: int, filters: ProductFilters | None = None) -> list[Hit]:
    """Products whose photos *look* like what the query names: the colour, pattern and category the
    attribute heads predicted from each image, never the catalog's own labels or words — a signal
    of the image-only index. Products matching more of the named attributes first, then by the
    heads' confidence."""
    variants = _query_phrases(query)
    vocabulary = _predicted_vocabulary()
    wanted = {
        name: [stored for value in sorted(set(values) & variants) for stored in values[value]]
        for name, values in vocabulary.items()
    }
    named_words = {w for name in vocabulary for v in set(vocabulary[name]) & variants for w in v.split()}
    unnamed = [w for w in content_words(query) if w not in named_words and w.rstrip("s") not in named_words]
    if not wanted.get("category") and unnamed and vocabulary.get("category"):
        # words beyond the named colour or pattern, and no category named as such: the predicted
        # categories nearest the query in meaning
        names = sorted(vocabulary["category"])
        nearest = nearest_names(query, names)
        wanted["category"] = [stored for i, _ in nearest for stored in vocabulary["category"][names[i]]]
    rows = catalog_selectors.products_by_predicted({n: v for n, v in wanted.items() if v}, filters, limit)
    return [
        Hit(pid, matched + score / 10, {"predicted": rank}) for rank, (pid, matched, score) in enumerate(rows, start=1)
    ]


ATTRIBUTE_ANY_CANDIDATES = 1000


def attribute_signal(
    query: str,
    limit: int,
    filters: ProductFilters | None = None,
    matching: catalog_selectors.FilterMatch | None = None,
    facts: ProductFacts | None = None,
    ignore: frozenset[str] = frozenset(),
) -> list[Hit]:
    """Products matching every attribute the query names first (an indexed AND: colour, pattern,
    category id), then products matching some of them, most first, ranked within a bounded
    candidate set. With ``facts`` kept in memory and the filter's matches known, ranked there
    (the same order, every match ranked)."""
    found = recognise_attributes(query, ignore)
    if not found:
        return []
    vocabulary = _vocabulary()
    columns = {"colour": "lower(p.colour)", "pattern": "lower(p.pattern)", "category": "p.category_id"}
    conditions, values = [], []
    for name, names in found.items():
        conditions.append(f"{columns[name]} = ANY(%s)")
        values.append([stored for n in names for stored in vocabulary[name][n]])
    # Among products matching every attribute, those named exactly as written come first: "earring"
    # finds the category "Earring" before "Earrings", which it also matches (plurals are folded).
    literal = _literal_phrases(query)
    exact_named: dict[str, list[Any]] = {}
    for (name, names), stored_values in zip(found.items(), values, strict=True):
        exact = [stored for n in names if n in literal for stored in vocabulary[name][n]]
        if exact and len(exact) < len(stored_values):  # some matched only through a plural or singular
            exact_named[name] = exact
    exact_conditions = [f"({columns[name]} = ANY(%s))::int" for name in exact_named]
    exact_values = list(exact_named.values())
    if facts is not None and matching is not None and matching.ids is not None:
        named = dict(zip(found, values, strict=True))
        rows = facts.attribute_ranking(named, exact_named, np.asarray(matching.ids, dtype=np.int64), limit)
        return [Hit(pid, score, {"attributes": rank}) for rank, (pid, score) in enumerate(rows, start=1)]
    first = " + ".join(exact_conditions) + " DESC, " if exact_conditions else ""
    # In SQL, colour and pattern are compared lower-cased, as the covering index of migration 0006
    # holds them: the products with every attribute are then one index range, not the AND of three
    # indexes of ~100,000 entries each (1,000,000 products: the stage 17.9 → 2.8 ms at p50, bench.search).
    values = [_lowered(name, v) for name, v in zip(found, values, strict=True)]
    exact_values = [_lowered(name, v) for name, v in zip(exact_named, exact_values, strict=True)]
    where, params = catalog_selectors.product_filter_sql(filters)
    every = (
        f"SELECT p.id FROM catalog_product p WHERE {where} AND {' AND '.join(conditions)} ORDER BY {first}p.id LIMIT %s"
    )
    matched = " + ".join(f"({c})::int" for c in conditions)
    some = f"""
        SELECT id, matched FROM (
            SELECT p.id, {matched} AS matched FROM catalog_product p
            WHERE {where} AND ({" OR ".join(conditions)}) AND NOT (p.id = ANY(%s)) LIMIT %s
        ) candidates ORDER BY matched DESC, id LIMIT %s
    """
    with connections[settings.SEARCH_DB_ALIAS].cursor() as cursor:
        cursor.execute(every, [*params, *values, *exact_values, limit])
        rows = [(pid, float(len(conditions))) for (pid,) in cursor.fetchall()]
        if len(rows) < limit and len(conditions) > 1:
            seen = [pid for pid, _ in rows]
            cap = _candidate_cap(ATTRIBUTE_ANY_CANDIDATES, matching)
            cursor.execute(some, [*values, *params, *values, seen, cap, limit - len(rows)])
            rows += [(pid, float(n)) for pid, n in cursor.fetchall()]
    return [Hit(pid, score, {"attributes": rank}) for rank, (pid, score) in enumerate(rows, start=1)]


def _lowered(name: str, stored: list[Any]) -> list[Any]:
    """A named attribute's stored values as the SQL of :func:`attribute_signal` compares them."""
    return stored if name == "category" else sorted({str(v).lower() for v in stored})


STOPWORDS = frozenset(
    {
        "a", "an", "and", "any", "are", "as", "at", "be", "but", "by", "for", "from", "have", "i", "in", "is",
        "it", "its", "me", "my", "of", "on", "one", "or", "our", "so", "some", "something", "that", "the",
        "their", "them", "these", "they", "this", "to", "up", "us", "was", "we", "what", "when", "where",
        "which", "who", "with", "you", "your",
    }
)  # fmt: skip


def content_words(text: str) -> list[str]:
    return [w for w in re.split(r"[^\w-]+", text.lower()) if w and w not in STOPWORDS and not w.isdigit()]


def title_has_every_word(title: str, words: set[str]) -> bool:
    """Every one of ``words`` is in ``title`` (a plural in the query matches a singular there)."""
    if not title or not words:
        return False
    title_words = set(content_words(title))
    return all(w in title_words or w.rstrip("s") in title_words for w in words)


def fusion_profile(
    text: str, ignore: frozenset[str] = frozenset(), keyword_every: bool = False, title_match: bool = False
) -> str:
    """Which kind of query this looks like, from what the shop can observe (never from a label):
    how many of its content words name a catalog category, colour or pattern (all / some / none),
    and what the keyword index found: a product whose title has every word (``title``: a name), products
    with every word (``keyword``) or neither (``no-keyword``). Each profile has its own fusion weights
    (:func:`fusion_weights`)."""
    words = content_words(text)
    named = recognise_attributes(text, ignore)
    value_words = {w for values in named.values() for v in values for w in re.split(r"[^\w-]+", v)}
    covered = [w for w in words if w in value_words or recognise_attributes(w, ignore)]
    share = "all" if words and len(covered) == len(words) else "some" if covered else "none"
    found = "title" if title_match else "keyword" if keyword_every else "no-keyword"
    return f"{share}-attributes/{found}"


@functools.lru_cache(maxsize=1)
def _fusion_table() -> dict[str, dict[str, float]]:
    path = settings.BASE_DIR / "search" / "fusion_weights.json"
    if not path.is_file():
        return {}
    import json

    return json.loads(path.read_text(encoding="utf-8"))["profiles"]


def fusion_weights(profile: str) -> dict[str, float]:
    """The signals' weights for this kind of query (tuned on the train split's queries by
    ``evaluate search --tune-fusion``, kept in search/fusion_weights.json); FUSION_WEIGHTS where a
    profile has none."""
    return {**FUSION_WEIGHTS, **_fusion_table().get(profile, {})}


SOLD_OUT_FACTOR = 0.9  # a sold-out product ranks as if its score were this much lower
NAMED_MAX = 3  # a query names products when at most this many found titles have all its words
RANKING_NOTE = (
    "in-stock products first: a sold-out one ranks below in-stock ones that match about as well (within 10 %), "
    "unless the query names it"
)


def in_stock_first(
    hits: list[Hit], text: str, briefs: dict[int, catalog_selectors.RankFacts] | None = None
) -> list[Hit]:
    """Sold-out products sink below comparable in-stock ones: each ranks as if its score were
    ``SOLD_OUT_FACTOR`` of what it is — below in-stock products that match about as well, still above
    those that match clearly worse — unless the query names it: the query is its title, or its title has
    every word of the query and at most ``NAMED_MAX`` found products' titles do ("navy cotton t-shirt"
    names a product and its other colours; "t-shirt" names a kind of product, and every t-shirt's title
    has it)."""
    if not hits:
        return hits
    briefs = dict(briefs or {})
    missing = [h.product_id for h in hits if h.product_id not in briefs]
    briefs.update(catalog_selectors.product_rank_facts(missing))
    words = set(content_words(text))
    titles = {pid: brief.title for pid, brief in briefs.items() if brief.title}  # only those read
    titled = {h.product_id for h in hits if title_has_every_word(titles.get(h.product_id, ""), words)}
    named = titled if len(titled) <= NAMED_MAX else set()
    # a title typed out in full names its product however many others share most of it
    typed = " ".join(text.lower().split())
    named |= {pid for pid in titled if " ".join(titles[pid].lower().split()) == typed}

    def place(item: tuple[int, Hit]) -> tuple[float, int]:
        position, hit = item
        brief = briefs.get(hit.product_id)
        sunk = brief is not None and not brief.has_stock and hit.product_id not in named
        score = hit.score - abs(hit.score) * (1 - SOLD_OUT_FACTOR) if sunk else hit.score
        return (-score, position)

    return [hit for _, hit in sorted(enumerate(hits), key=place)]


@functools.lru_cache(maxsize=8)
def _category_sentences(
    space: EmbeddingSpace, names: tuple[str, ...], described: tuple[str, ...] | None = None
) -> np.ndarray | None:
    """The names' sentence vectors; with ``described`` (each name with where the catalog files it,
    "t-shirt (garment upper body)"), the normalised mean of both: chosen on the train split's natural
    requests, where it ranked the right categories' products first more often than the name alone
    (P@10 of the categories' products 0.653 against 0.594)."""
    from lifecycle.serving import query_embedder_for_space

    with _query_lock:
        embedder = query_embedder_for_space(space)
        table = embedder.encode_sentences(list(names))
        if table is None or described is None:
            return table
        in_tree = embedder.encode_sentences(list(described))
    if in_tree is None:
        return table
    mixed = table + in_tree
    return mixed / np.maximum(np.linalg.norm(mixed, axis=1, keepdims=True), 1e-12)


def _sentence_cached(space: EmbeddingSpace, text: str) -> tuple[float, ...] | None:
    return _encode_cached(space, text)[1]


def nearest_names(
    text: str,
    names: Sequence[str],
    k: int = CATEGORY_MATCHES,
    space: EmbeddingSpace | None = None,
    described: Sequence[str] | None = None,
) -> list[tuple[int, float]]:
    """The positions of the ``k`` of ``names`` nearest ``text`` in meaning (the text tower's sentence
    vectors; ``described``: a longer text per name, read beside it), with their cosine similarity, at
    least :data:`CATEGORY_MIN_SIMILARITY`; empty when the tower has none or no space is active."""
    space = space or _space()
    if space is None or not names:
        return []
    table = _category_sentences(space, tuple(names), tuple(described) if described is not None else None)
    query = _sentence_cached(space, text.strip().lower())
    if table is None or query is None:
        return []
    similarity = table @ np.asarray(query, dtype=np.float32)
    nearest = np.argsort(-similarity, kind="stable")[:k]
    return [(int(i), float(similarity[i])) for i in nearest if similarity[i] >= CATEGORY_MIN_SIMILARITY]


def nearest_categories(text: str, space: EmbeddingSpace | None = None) -> dict[int, float]:
    """The leaf categories nearest the query in meaning, each read by its name and by its name with its
    parent's (:func:`nearest_names`): category id → similarity."""
    leaves = catalog_fact("category_in_tree", catalog_selectors.leaf_categories_in_tree, VOCABULARY_TTL_S)
    names = [name for _, name, _ in leaves]
    described = [in_tree for _, _, in_tree in leaves]
    return {leaves[i][0]: similarity for i, similarity in nearest_names(text, names, space=space, described=described)}


def categories_signal(
    text: str,
    limit: int,
    filters: ProductFilters | None = None,
    near: Sequence[Hit] = (),
    *,
    space: EmbeddingSpace | None = None,
    briefs: dict[int, catalog_selectors.RankFacts] | None = None,
    nearest: dict[int, float] | None = None,
    rest: list[tuple[int, int]] | None = None,
) -> list[Hit]:
    """Products of the catalog categories nearest the query *in meaning* — "something to wear to the
    beach" → swimsuits, bikini tops — by the text tower's own sentence vectors (all-MiniLM-L6-v2) of
    the query and of the categories' names (:func:`nearest_categories`). First the products of ``near``
    (the text signal's list) in those categories, each scored by its category's similarity plus half
    its own; then the categories' other products (``rest``, read here when not given), nearest
    category first. Empty for a text tower without sentence vectors."""
    space = space or _space()
    if space is None:
        return []
    nearest = nearest_categories(text, space) if nearest is None else nearest
    if not nearest:
        return []
    if briefs is None:
        briefs = catalog_selectors.product_rank_facts([h.product_id for h in near])
    category_of = {pid: brief.category_id for pid, brief in briefs.items() if brief.category_id is not None}
    scored = sorted(
        (
            (nearest[category_of[h.product_id]] + 0.5 * h.score, h.product_id)
            for h in near
            if category_of.get(h.product_id) in nearest
        ),
        key=lambda item: (-item[0], item[1]),
    )
    seen = {pid for _, pid in scored}
    if len(scored) < limit:
        if rest is None:
            rest = catalog_selectors.product_ids_in_categories(list(nearest), filters, limit)
        others = sorted((-nearest[cid], pid) for pid, cid in rest if pid not in seen)  # best first, then id
        scored += [(-negated, pid) for negated, pid in others[: limit - len(scored)]]
    return [Hit(pid, score, {"categories": rank}) for rank, (score, pid) in enumerate(scored[:limit], start=1)]


def fuse(lists: dict[str, list[Hit]], limit: int, weights: dict[str, float] | None = None) -> list[Hit]:
    """Weighted reciprocal-rank fusion; ties broken by product id, so pages are stable."""
    weights = FUSION_WEIGHTS if weights is None else weights
    scores: dict[int, float] = {}
    ranks: dict[int, dict[str, int]] = {}
    for name, hits in lists.items():
        weight = weights.get(name, 1.0)
        for rank, hit in enumerate(hits, start=1):
            pid = hit.product_id
            scores[pid] = scores.get(pid, 0.0) + weight / (RRF_K + rank)
            ranks.setdefault(pid, {})[name] = rank
    best = sorted((-score, pid) for pid, score in scores.items())[:limit]  # best first, ties by id
    return [Hit(pid, -negated, ranks[pid]) for negated, pid in best]


def _clean_query(query: str) -> str:
    return " ".join(query.split())[:MAX_QUERY_CHARS]


@dataclass
class Ranking:
    """A text query's whole ranked result set and how the query was read."""

    hits: list[Hit]
    corrected: str = ""  # the query with its typos corrected, when that is clearly better ("did you mean")
    understood: Understood | None = None
    filters: ProductFilters | None = None  # the shopper's filters with the understood ones
    profile: str = ""  # which fusion weights ranked it (see fusion_profile)
    facts: ProductFacts | None = None  # set when the filter was answered from the facts in memory
    lists: dict[str, list[Hit]] = field(default_factory=dict)  # each signal's own ranking


def signal_lists(
    query: str, *, signals: Sequence[str] = DEFAULT_SIGNALS, filters: ProductFilters | None = None, pool: int = POOL
) -> Ranking:
    """Each signal's ranking of a text query and its fusion profile, read exactly as a search reads
    the query (typos corrected, filters understood), not fused: what the fusion weights are tuned on."""
    return _ranked(query, signals=signals, filters=filters, pool=pool, parallel=False, keep_lists=True)


def ranked_products(
    query: str,
    *,
    signals: Sequence[str] = DEFAULT_SIGNALS,
    filters: ProductFilters | None = None,
    pool: int = POOL,
    parallel: bool | None = None,
    ignore: frozenset[str] = frozenset(),
) -> tuple[list[Hit], str]:
    """The whole ranked result set for a text query (fused when several signals are asked for), and
    the query after typo correction ("" when unchanged or not clearly better).

    The signals' database queries run side by side on the query threads (``SEARCH_QUERY_THREADS``,
    each with its own connection) while this thread reads the filter's matches and scores the
    vectors — unless ``parallel`` is False, or None and this connection is inside a transaction
    (other connections would not see what it wrote). The ranking is the same either way.
    """
    ranking = _ranked(query, signals=signals, filters=filters, pool=pool, parallel=parallel, ignore=ignore)
    ranked = ranking.hits
    if ranking.facts is not None:  # the facts in memory may lag the database by a second: show what passes now
        passing = catalog_selectors.product_ids_passing([h.product_id for h in ranked], ranking.filters)
        ranked = [h for h in ranked if h.product_id in passing]
    return ranked, ranking.corrected


def ranked_with_facets(
    query: str,
    *,
    signals: Sequence[str] = DEFAULT_SIGNALS,
    filters: ProductFilters | None = None,
    ignore: frozenset[str] = frozenset(),
) -> tuple[Ranking, dict[str, list[tuple[str, int]]]]:
    """:func:`ranked_products` and the facet counts of the whole result set. With the products'
    facts in memory, the check of the result set against the database and the sizes in stock are
    one query and the other facets are counted in memory."""
    ranking = _ranked(query, signals=signals, filters=filters, pool=POOL, parallel=None, ignore=ignore)
    facts = ranking.facts
    if facts is None and not (ranking.filters is not None and ranking.filters.active()):
        # unfiltered: the facts kept beside the active space's vectors count the facets too
        from search.vector_memory import memory_vectors

        space = _space()
        store = memory_vectors(space) if space is not None else None
        facts = store.facts if store is not None else None
    if facts is None:
        return ranking, facets_of([h.product_id for h in ranking.hits])
    passing, sizes = catalog_selectors.product_ids_passing_with_sizes(
        [h.product_id for h in ranking.hits], ranking.filters
    )
    ranking.hits = [h for h in ranking.hits if h.product_id in passing]
    ids = np.array([h.product_id for h in ranking.hits], dtype=np.int64)
    counts, per_category = facts.facet_counts(ids, [high for _, high in PRICE_BANDS if high])
    paths = catalog_selectors.category_paths(list(per_category))
    counts["category"] = [(paths[c], n) for c, n in per_category.items() if c in paths]
    counts["size"] = sizes
    return ranking, _facet_lists(counts)


def _ranked(
    query: str,
    *,
    signals: Sequence[str],
    filters: ProductFilters | None,
    pool: int,
    parallel: bool | None,
    ignore: frozenset[str] = frozenset(),
    keep_lists: bool = False,
) -> Ranking:
    """The ranking of :func:`ranked_products`, not yet checked against the database when the
    filter was answered from the facts in memory (those facts are returned then). ``keep_lists``:
    each signal's list and the query's fusion profile only, nothing fused (for tuning the weights)."""
    query = _clean_query(query)
    if not query:
        return Ranking([], filters=filters)
    unknown = set(signals) - set(SIGNALS)
    if unknown or not signals:
        raise ValueError(f"unknown signal(s) {sorted(unknown)}; choose from {SIGNALS}")
    if parallel is None:
        parallel = _query_threads_usable()
    run = _run_on_query_thread if parallel and len(signals) > 1 else _run_here
    # Every signal reads the query with its typos corrected: only words that are no real word change
    # (search.spelling), so a correctly spelt word always reaches every signal as written.
    correction = speller(settings.SEARCH_DB_ALIAS).correct_query(query)
    # price, department and size become filters and leave the text; named categories, colours and
    # patterns stay in it (the attribute signal boosts them)
    understood = understand_query(
        correction.text, filters, ignore=ignore, recognised=recognise_attributes(correction.text, ignore)
    )
    text, filters = understood.text, understood.filters
    vector_kinds = [signal for signal in signals if signal in ("image", "text")]
    filtered = filters is not None and filters.active()
    deferred: dict[str, Future[Any]] = {}
    if "keyword" in signals:
        # Under a filter the vector signals rank the filtered products themselves, so the keyword
        # signal keeps to products with every word: its "any word" fill (a scan of up to 1,000
        # rows) would only repeat them.
        deferred["keyword"] = run(keyword_signal_counted, text, pool, filters, not (filtered and vector_kinds))
    if "predicted" in signals:
        deferred["predicted"] = run(predicted_signal, text, pool, filters)
    # Both vector signals (and the attribute signal) need the filter's matches: read them once, from
    # the facts kept in memory when there are (then checked against the database at the end).
    space = _space() if vector_kinds else None  # read once for every vector step below
    asked = list(vector_kinds)
    vector_kinds = _semantic_kinds(vector_kinds, space)
    vector = encode_query_text(text, space) if vector_kinds else None
    matching, facts = _filter_match(filters, space) if filtered and vector_kinds else (None, None)
    nearest: dict[int, float] = {}
    rest: Future[Any] | None = None
    if "categories" in signals:
        # the categories nearest the query; their products are read on a query thread meanwhile
        space = space or _space()
        nearest = nearest_categories(text, space) if space is not None else {}
        if nearest and facts is not None and matching is not None and matching.ids is not None:
            # the filter's matches are known and the facts kept in memory: no query
            rest = _run_here(facts.in_categories, matching.ids, list(nearest), pool * len(nearest))
        elif nearest:
            rest = run(catalog_selectors.product_ids_in_categories, list(nearest), filters, pool)
    lists: dict[str, list[Hit]] = {}
    if "attributes" in signals:
        if facts is not None and matching is not None and matching.ids is not None:
            lists["attributes"] = attribute_signal(text, pool, filters, matching, facts, ignore)
        else:
            deferred["attributes"] = run(attribute_signal, text, pool, filters, matching, None, ignore)
    if vector is not None:
        if matching is not None and matching.ids is not None and len(vector_kinds) > 1:
            # a filter leaving few products: score them for both kinds in one exact pass
            lists.update(vector_signals_exact(vector, vector_kinds, pool, matching.ids, space=space))
        else:
            # the kinds' index scans run side by side: all but the last on query threads
            scans = {
                kind: (run if kind != vector_kinds[-1] else _run_here)(
                    functools.partial(vector_signal, space=space), vector, kind, pool, filters, matching
                )
                for kind in vector_kinds
            }
            lists.update({kind: scan.result() for kind, scan in scans.items()})
    corrected = ""
    with_every_word = 0
    for name, future in deferred.items():
        if name == "keyword":
            lists[name], with_every_word = future.result()
            # "did you mean" only when the corrected query is clearly better supported: the typed one
            # held a word no product uses, the corrected one is found with every word
            if correction.changed and with_every_word:
                corrected = correction.text
        else:
            lists[name] = future.result()
    category_rest = rest.result() if rest is not None else []
    found_ids = list({h.product_id for hits in lists.values() for h in hits} | {pid for pid, _ in category_rest})
    briefs = _rank_facts(found_ids, space)
    if "categories" in signals:
        lists["categories"] = categories_signal(
            text,
            pool,
            filters,
            lists.get("text", ()),
            space=space,
            briefs=briefs,
            nearest=nearest,
            rest=category_rest,
        )
    for kind in asked:
        lists.setdefault(kind, [])  # a signal this space cannot answer yet contributes nothing
    lists = {signal: lists[signal] for signal in signals}  # the order asked for
    title_match = False
    if with_every_word:  # a product named by the query: its title has every word (one small look-up)
        top = [h.product_id for h in lists["keyword"][: min(5, with_every_word)]]
        words = set(content_words(text))
        title_match = any(title_has_every_word(briefs[pid].title, words) for pid in top if pid in briefs)
    profile = fusion_profile(text, ignore, bool(with_every_word), title_match)
    ranking = Ranking([], corrected, understood, filters, profile, facts, lists=lists)
    if keep_lists:
        return ranking
    ranked = (
        next(iter(lists.values())) if len(lists) == 1 else fuse(lists, max(pool, RESULT_SET), fusion_weights(profile))
    )
    ranking.hits = in_stock_first(ranked, text, briefs)
    return ranking


def _rank_facts(product_ids: list[int], space: EmbeddingSpace | None) -> dict[int, catalog_selectors.RankFacts]:
    """Stock, category and title of the products a search found: from the facts kept in memory (loaded
    by the process's warm-up or first search), else in one query."""
    from search.vector_memory import memory_vectors

    store = memory_vectors(space) if space is not None else None
    kept = store.facts.rank_facts(product_ids) if store is not None else {}
    if len(kept) < len(product_ids):
        return catalog_selectors.product_rank_facts(product_ids)
    return kept


def _filter_match(
    filters: ProductFilters, space: EmbeddingSpace | None = None
) -> tuple[catalog_selectors.FilterMatch, ProductFacts | None]:
    """The products passing ``filters``: from the facts kept in memory beside the vectors of
    ``space`` (the active one, read here when not given) when there are (returned too), else from
    the database."""
    from search.vector_memory import memory_vectors

    space = space or _space()
    memory = memory_vectors(space) if space is not None else None
    if memory is None or not memory.facts.serves(filters):
        return catalog_selectors.product_filter_match(filters), None
    categories = catalog_selectors.category_ids_under(filters.category) if filters.category else None
    ids = memory.facts.ids[memory.facts.passing(filters, categories)]
    few = len(ids) <= catalog_selectors.EXACT_SCAN_MAX
    return catalog_selectors.FilterMatch(ids=tuple(ids.tolist()) if few else None), memory.facts


# --- the query threads -------------------------------------------------------------------------

_threads_lock = threading.Lock()
# (process id, thread count, pool): a forked child (web or Celery worker) starts its own
_threads: tuple[int, int, ThreadPoolExecutor] | None = None


def _query_threads() -> ThreadPoolExecutor:
    global _threads
    with _threads_lock:
        if _threads is None or _threads[0] != os.getpid():
            workers = max(1, settings.SEARCH_QUERY_THREADS)
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="search-query")
            _threads = (os.getpid(), workers, pool)
        return _threads[2]


def _query_threads_usable() -> bool:
    """Whether a search may run queries on the query threads: they are configured, and this thread's
    connection is not inside a transaction (the threads' own connections would not see its writes)."""
    return settings.SEARCH_QUERY_THREADS > 0 and not connections[settings.SEARCH_DB_ALIAS].in_atomic_block


def _on_own_connection(call: Callable[..., Any], *args: Any) -> Any:
    """Run ``call`` on this query thread's own database connection (kept open between searches);
    one found broken (the server restarted) is closed and the call made once more."""
    try:
        return call(*args)
    except (OperationalError, InterfaceError):
        connections[settings.SEARCH_DB_ALIAS].close()
        return call(*args)


def _run_on_query_thread(call: Callable[..., Any], *args: Any) -> Future[Any]:
    return _query_threads().submit(_on_own_connection, call, *args)


def _run_here(call: Callable[..., Any], *args: Any) -> Future[Any]:
    done: Future[Any] = Future()
    done.set_result(call(*args))
    return done


def search_query_threads_close() -> None:
    """Close the query threads' database connections and stop the threads (a new search starts
    them again). For shutdown and for tests, before their database is dropped."""
    global _threads
    with _threads_lock:
        threads, _threads = _threads, None
    if threads is None or threads[0] != os.getpid():
        return
    _, count, pool = threads
    barrier = threading.Barrier(count)  # one close per thread: each waits until all have started

    def close() -> None:
        barrier.wait(timeout=10)
        connections.close_all()

    for future in [pool.submit(close) for _ in range(count)]:
        future.result()
    pool.shutdown(wait=True)


def search_text(
    query: str, *, signals: Sequence[str] = DEFAULT_SIGNALS, limit: int = 50, filters: ProductFilters | None = None
) -> list[Hit]:
    """Ranked products for a text query, by the given signals (one signal = that list alone)."""
    return ranked_products(query, signals=signals, filters=filters, pool=max(limit, 100))[0][:limit]


def search_products(
    query: str,
    *,
    filters: ProductFilters | None = None,
    page: int = 1,
    page_size: int = 24,
    signals: Sequence[str] = DEFAULT_SIGNALS,
    ignore: frozenset[str] = frozenset(),
) -> SearchResult:
    """One page of a shopper's text search, with facet counts over the whole result set and the parts
    of the query that were understood (less those the shopper undid: ``ignore``)."""
    if page < 1 or not 1 <= page_size <= 100:
        raise ValueError("page starts at 1 and page_size is 1–100")
    unknown = set(ignore) - set(PART_KEYS)
    if unknown:
        raise ValueError(f"unknown understood part(s) {sorted(unknown)}; choose from {list(PART_KEYS)}")
    ranking, facets = ranked_with_facets(query, signals=signals, filters=filters, ignore=frozenset(ignore))
    ranked = ranking.hits
    start = (page - 1) * page_size
    return SearchResult(
        hits=ranked[start : start + page_size],
        total=len(ranked),
        page=page,
        page_size=page_size,
        facets=facets,
        query=_clean_query(query),
        corrected_query=ranking.corrected,
        note=search_note(ranked, signals),
        understood=ranking.understood.parts if ranking.understood else [],
        ignored=sorted(ignore),
    )


def search_note(ranked: Sequence[Hit], signals: Sequence[str]) -> str:
    """What to tell the shopper about a result set: that no product has the query's words, when the
    keyword signal was asked for and found none of the results."""
    if ranked and "keyword" in signals and not any("keyword" in h.signals for h in ranked):
        return "no product mentions these words; these are the closest in look and description"
    return ""


def facets_of(product_ids: Sequence[int]) -> dict[str, list[tuple[str, int]]]:
    """Counts per category, colour, pattern, size in stock and price band over these products."""
    return _facet_lists(catalog_selectors.product_facet_counts(product_ids, [high for _, high in PRICE_BANDS if high]))


def _facet_lists(counts: dict[str, list[tuple[str, int]]]) -> dict[str, list[tuple[str, int]]]:
    """Price bucket numbers as band names; each facet most frequent first, then by name."""
    bands = {i: price_band(low) for i, (low, _) in enumerate(PRICE_BANDS)}
    counts = {**counts, "price": [(bands[int(i)], n) for i, n in counts["price"]]}
    names = ("category", "colour", "pattern", "size", "price")
    return {name: sorted(counts[name], key=lambda kv: (-kv[1], kv[0])) for name in names}


def price_band(price: float) -> str:
    for low, high in PRICE_BANDS:
        if high is None or price < high:
            return f"{low}+" if high is None else f"{low}-{high}"
    raise AssertionError("unreachable")


# --- photo search ------------------------------------------------------------------------------


@dataclass
class GarmentResult:
    label: str
    box: tuple[int, int, int, int]
    hits: list[Hit]
    score: float = 0.0  # the parser's confidence in the garment


# Which garment a photo shows can only be one of a product's kind: a skirt in a street photo is
# not looked for among tops. Parser classes that may stand for one another:
COMPATIBLE_GARMENTS: dict[str, frozenset[str]] = {
    "top": frozenset({"top", "outerwear", "dress"}),
    "outerwear": frozenset({"top", "outerwear", "dress"}),
    "dress": frozenset({"top", "outerwear", "dress", "bottom"}),
    "bottom": frozenset({"bottom", "dress"}),
    "footwear": frozenset({"footwear"}),
    "bag": frozenset({"bag"}),
    "accessory": frozenset({"accessory"}),
}
MIN_GARMENT_SHARE = 0.004  # garments smaller than this share of the photo are noise

# What kind of garment a product is, for photo search, where its catalog category's name says it. The
# parser's own label for a product's photo is the fallback only: trained on person photos and on VITON's
# product photos, which are all tops, it called 399 of the 400 demo products (H&M photos of the product
# alone) a "top", trousers, shoes and bags included, so a photo's trousers found no trousers.
_KIND_WORDS = {
    "bottom": "trousers trouser jeans pants skirt skirts shorts leggings tights joggers chinos bottom bottoms",
    "dress": "dress dresses gown jumpsuit playsuit romper dungarees",
    "footwear": "shoe shoes boot boots sandal sandals sneakers trainers heels ballerinas slippers wedge loafers "
    "pumps footwear socks",
    "bag": "bag bags backpack handbag purse tote",
    "accessory": "earring earrings necklace bracelet ring hat hats cap beanie scarf belt hair sunglasses gloves "
    "jewellery jewelry watch umbrella accessories",
    "outerwear": "jacket jackets coat coats blazer waistcoat parka gilet anorak",
    "top": "top tops t-shirt tee shirt shirts blouse sweater jumper hoodie cardigan bodysuit polo sweatshirt bra",
}
GARMENT_KIND_WORDS: dict[str, frozenset[str]] = {kind: frozenset(words.split()) for kind, words in _KIND_WORDS.items()}
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*")


def garment_kind_of_category(name: str, parent: str = "") -> str | None:
    """The garment kind a category's name says ("Swimwear bottom" → bottom, "Hat/beanie" → accessory),
    read from its last word back, then its parent's; None when no word says one."""
    for text in (name, parent):
        for word in reversed(_WORD.findall(text.lower())):
            for kind, words in GARMENT_KIND_WORDS.items():
                if word in words:
                    return kind
    return None


def _category_kinds() -> dict[int, str]:
    """Each leaf category's garment kind, where its name says one (cached with the category tree)."""

    def load() -> dict[int, str]:
        kinds = {}
        for cid, name, in_tree in catalog_selectors.leaf_categories_in_tree():
            parent = in_tree[len(name) + 2 : -1]  # "name (parent)", or the name alone at the root
            kind = garment_kind_of_category(name, parent)
            if kind is not None:
                kinds[cid] = kind
        return kinds

    return catalog_fact("category_garment_kinds", load, VOCABULARY_TTL_S)


def product_garment_kinds(product_ids: Sequence[int]) -> dict[int, str]:
    """Each product's garment kind: its category's (:func:`garment_kind_of_category`), else the class
    the parser found largest in its photos; products with neither are left out."""
    by_category = _category_kinds()
    facts = catalog_selectors.product_rank_facts(list(product_ids))
    kinds = {pid: by_category[f.category_id] for pid, f in facts.items() if f.category_id in by_category}
    rest = [pid for pid in product_ids if pid not in kinds]
    return {**catalog_selectors.product_garment_classes(rest), **kinds} if rest else kinds


class PhotoError(ValueError):
    """The photo or the requested crop cannot be searched; ``str(exc)`` says why."""


def _photo_working_copy(image: Image.Image, max_side: int) -> tuple[Image.Image, tuple[float, float]]:
    """``image`` scaled down to at most ``max_side`` pixels on its long side (aspect kept; an image
    within it is returned as it is), and the factors that take its x and y back to ``image``'s pixels."""
    if max_side <= 0 or max(image.size) <= max_side:
        return image, (1.0, 1.0)
    small = resized_to_long_side(image, max_side, Image.Resampling.BICUBIC)
    return small, (image.width / small.width, image.height / small.height)


def photo_parse_size(parser: Parser) -> int | None:
    """The long side at which ``parser`` reads a shopper's photo: ``SEARCH_PHOTO_PARSE_SIZE`` when it is
    set and below the parser's own working size, else None (the parser's own)."""
    size = int(settings.SEARCH_PHOTO_PARSE_SIZE)
    own = getattr(parser, "working_size", None)
    return size if size > 0 and (own is None or size < int(own)) else None


def search_photo(
    image: Image.Image,
    *,
    limit: int = 20,
    filters: ProductFilters | None = None,
    crop: tuple[int, int, int, int] | None = None,
    garment: int | None = None,
) -> list[GarmentResult]:
    """A shopper's photo → each garment the parser finds → products of a compatible kind (by their
    category, else the garment class the parser found in their own photos) that look like it, with the
    garment's box. ``crop`` (x0, y0, x1, y1 in photo pixels) searches only that part; ``garment``
    keeps only that garment (an index into the unpicked result)."""
    from lifecycle.serving import query_embedder_for_space, query_parser
    from vision.parsing import cutout

    if image.mode != "RGB":  # convert() copies even an RGB photo: a phone's is 36 MB
        image = image.convert("RGB")
    offset = (0, 0)
    if crop is not None:
        x0, y0, x1, y1 = (int(v) for v in crop)
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(image.width, x1), min(image.height, y1)
        if x1 - x0 < 16 or y1 - y0 < 16:
            raise PhotoError("the crop is too small: draw a box of at least 16 × 16 pixels around the garment")
        image, offset = image.crop((x0, y0, x1, y1)), (x0, y0)
    width, height = image.size  # boxes are given in these pixels (plus the crop's offset)
    image, scale = _photo_working_copy(image, int(settings.SEARCH_PHOTO_MAX_SIDE))
    parser = query_parser()  # the active parser, or the fallback until one is trained
    parsed = parser.parse(image, photo_parse_size(parser))
    area = image.width * image.height
    garments = [
        g
        for g in parsed.garments
        if g.label not in {"background", "skin", "hair"} and g.area >= MIN_GARMENT_SHARE * area
    ]
    if garment is not None:
        if not 0 <= garment < len(garments):
            raise PhotoError(f"the photo shows {len(garments)} garment(s); pick one of 0–{len(garments) - 1}")
        garments = [garments[garment]]
    space = _space()
    if not garments or space is None:
        return []
    vectors = query_embedder_for_space(space).encode_images([cutout(image, g.mask) for g in garments])
    # each garment's products are looked up side by side: all but the last on the query threads
    parallel = _query_threads_usable()
    lookups = [
        (_run_on_query_thread if parallel and i < len(garments) - 1 else _run_here)(
            _garment_hits, vector, found.label, limit, filters, space
        )
        for i, (found, vector) in enumerate(zip(garments, vectors, strict=True))
    ]
    results = []
    for found, lookup in zip(garments, lookups, strict=True):
        hits = lookup.result()
        x0, y0, x1, y1 = found.box
        box = (
            offset[0] + int(x0 * scale[0]),
            offset[1] + int(y0 * scale[1]),
            offset[0] + min(round(x1 * scale[0]), width),
            offset[1] + min(round(y1 * scale[1]), height),
        )
        results.append(GarmentResult(found.label, box, hits[:limit], round(float(found.score), 4)))
    return results


# A garment's products come from one index scan that tests each candidate's category as it goes
# (products whose category names no kind pass, and are judged after by the class the parser found in
# their photos). The scan reads at most this many index rows: on a million products copied from real
# articles (60 VITON train photos, 139 garments) 2,000 left 18 garments short of 20 products and none
# empty, at p95 28 ms a lookup; 4,000 left 8 short at p95 50 ms.
GARMENT_SCAN_MAX = 2000
# Under a shopper's filter (or where the parser's class of an uncategorised product's photos dropped it)
# the garment's products are looked up in a pool of ``limit`` × 4 nearest; where fewer than ``limit`` of
# them are of a compatible kind, the pool grows fourfold up to this (pgvector's longest candidate list).
GARMENT_POOL_MAX = 1000


def _garment_hits(
    vector: np.ndarray, label: str, limit: int, filters: ProductFilters | None, space: EmbeddingSpace
) -> list[Hit]:
    """The ``limit`` products whose photos look most like one garment of a shopper's photo, of a kind
    compatible with its ``label`` (each product's kind: :func:`product_garment_kinds`)."""
    allowed = COMPATIBLE_GARMENTS.get(label)
    ef_search = photo_ef_search()
    if allowed is None:
        return vector_signal(vector, "image", limit, filters, space=space, ef_search=ef_search)

    def compatible(hits: list[Hit]) -> list[Hit]:
        kinds = product_garment_kinds([h.product_id for h in hits])
        return [h for h in hits if kinds.get(h.product_id) in allowed or h.product_id not in kinds]

    if filters is None or not filters.active():
        by_category = _category_kinds()
        gate = catalog_selectors.CategoryGate(
            allowed=tuple(sorted(c for c, kind in by_category.items() if kind in allowed)),
            judged=tuple(sorted(by_category)),
        )
        hits = vector_signal(
            vector, "image", limit, space=space, ef_search=ef_search, categories=gate, max_scan_tuples=GARMENT_SCAN_MAX
        )
        kept = compatible(hits)
        if len(kept) == len(hits):
            return kept
        # products the parser's class judged were dropped: look further, as under a filter
    pool = limit * 4
    while True:
        hits = vector_signal(vector, "image", pool, filters, space=space, ef_search=ef_search)
        kept = compatible(hits)
        if len(kept) >= limit or len(hits) < pool or pool >= GARMENT_POOL_MAX:
            return kept[:limit]
        pool = min(pool * 4, GARMENT_POOL_MAX)


def merge_garment_results(results: list[GarmentResult], limit: int) -> list[Hit]:
    """One list for a whole photo: each product's best similarity over the garments."""
    best: dict[int, Hit] = {}
    for result in results:
        for hit in result.hits:
            if hit.product_id not in best or hit.score > best[hit.product_id].score:
                best[hit.product_id] = Hit(hit.product_id, hit.score, {result.label: hit.signals.get("image", 0)})
    return sorted(best.values(), key=lambda h: (-h.score, h.product_id))[:limit]

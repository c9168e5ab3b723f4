"""Product vectors kept in the search process's memory, for exact scoring of filtered searches.

A filter that leaves at most ``catalog.selectors.EXACT_SCAN_MAX`` products is answered by scoring
exactly those products' vectors. In PostgreSQL that reads every matching product's vector rows
(about 3 µs a row on the 2-core machine: 50 ms for a colour that 8,000 products of 100,000 have,
both kinds); from memory it is a gather and one matrix product (about 1 ms). ``python -m
bench.search`` measures both in the same run.

The active space's product vectors are loaded once per process (unit length, float16: 100,000
products × 2 kinds × 256 dimensions = 100 MB; a full load of 200,000 rows takes about 2 s) and kept
current: at most every ``SEARCH_MEMORY_REFRESH_S`` seconds the process asks for the newest
``updated_at`` (one index lookup) and reads only the rows written since (with 5 s of overlap, for
writes that commit out of order; one that commits later still waits for the next full load); when that newest time went
*back* (rows deleted, a transaction rolled back) and every ``SEARCH_MEMORY_RELOAD_S`` seconds it
loads everything again, which also forgets deleted vectors. The products' filterable facts are kept
beside the vectors the same way (:mod:`search.fact_memory`, from ``catalog_product.updated_at``);
what a search shows is checked against the database once more, so a product switched off or out of
stock never shows up.
With more than ``SEARCH_MEMORY_VECTORS_MAX`` vector rows (or that setting at 0) nothing is kept and
the database path serves every search.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings

from catalog import selectors as catalog_selectors
from catalog.models import EmbeddingSpace
from search.fact_memory import ProductFacts

logger = logging.getLogger(__name__)
OVERLAP = timedelta(seconds=5)
_BLOCK = 4096  # rows widened to float32 at a time: 4 MB at 256 dimensions


@dataclass(frozen=True)
class KindMatrix:
    """One kind's vectors: product ids ascending, float16 unit rows in the same order."""

    ids: np.ndarray
    rows: np.ndarray

    @classmethod
    def build(cls, ids: np.ndarray, rows: np.ndarray) -> KindMatrix:
        order = np.argsort(ids, kind="stable")
        return cls(ids[order].astype(np.int64), _unit(rows[order]))

    def merged(self, ids: np.ndarray, rows: np.ndarray) -> KindMatrix:
        """These rows added; a product already present takes its new vector."""
        all_ids = np.concatenate([self.ids, ids.astype(np.int64)])
        all_rows = np.concatenate([self.rows, _unit(rows)])
        order = np.argsort(all_ids, kind="stable")  # equal ids: the newer row last
        ordered = all_ids[order]
        last = np.append(ordered[1:] != ordered[:-1], True)
        keep = order[last]
        return KindMatrix(all_ids[keep], all_rows[keep])

    def nearest(self, query: np.ndarray, product_ids: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The ``k`` of ``product_ids`` nearest to the unit ``query`` by cosine distance, as (id,
        distance), nearest first, ties by id (products without a vector are left out)."""
        if not len(self.ids) or not len(product_ids) or k <= 0:
            return []
        pos = np.minimum(np.searchsorted(self.ids, product_ids), len(self.ids) - 1)
        present = self.ids[pos] == product_ids
        ids, pos = product_ids[present], pos[present]
        # float16 rows gathered and widened a block at a time, then one float32 product per block
        # (numpy has no fast float16 product; a web process holds no torch)
        query = np.asarray(query, dtype=np.float32)
        distance = np.empty(len(pos), dtype=np.float32)
        for start in range(0, len(pos), _BLOCK):
            block = self.rows[pos[start : start + _BLOCK]].astype(np.float32)
            distance[start : start + _BLOCK] = 1.0 - block @ query
        if len(ids) > k:
            # a margin for ties at the boundary, then the exact order
            cut = np.argpartition(distance, k - 1)[: min(len(ids), k + 16)]
            ids, distance = ids[cut], distance[cut]
        order = np.lexsort((ids, distance))[:k]
        return [(int(ids[i]), float(distance[i])) for i in order]


def _unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return (rows / np.maximum(norms, 1e-12)).astype(np.float16)


class MemoryVectors:
    """The product vectors of one space on one database connection alias, kept current."""

    def __init__(self, space: EmbeddingSpace, using: str) -> None:
        self.space, self.using = space, using
        self.kinds: dict[str, KindMatrix] = {}
        self.newest: datetime | None = None
        self.facts = ProductFacts.empty()
        self.facts_newest: datetime | None = None
        self.loaded_at = -1.0e9
        self.checked_at = -1.0e9
        self.too_many = False
        self._lock = threading.Lock()

    def current(self) -> MemoryVectors | None:
        """Self after any refresh that is due; None when the space holds too many vectors."""
        with self._lock:
            now = time.monotonic()
            if now - self.loaded_at >= settings.SEARCH_MEMORY_RELOAD_S:
                self._load_all(now)
            elif not self.too_many and now - self.checked_at >= settings.SEARCH_MEMORY_REFRESH_S:
                self.checked_at = now
                newest = catalog_selectors.product_vectors_newest_change(self.space, self.using)
                if newest is not None and self.newest is not None and newest > self.newest:
                    self._load_changes()
                elif newest != self.newest:  # went back (deleted, rolled back) or emptied
                    self._load_all(now)
                    return None if self.too_many else self
                facts_newest = catalog_selectors.product_facts_newest_change(self.using)
                if facts_newest is not None and self.facts_newest is not None and facts_newest > self.facts_newest:
                    self._load_fact_changes()
                elif facts_newest != self.facts_newest:
                    self._load_all(now)
            return None if self.too_many else self

    def _load_all(self, now: float) -> None:
        self.loaded_at = self.checked_at = now
        rows = catalog_selectors.product_vector_count(self.space, self.using)
        self.too_many = rows > settings.SEARCH_MEMORY_VECTORS_MAX
        if self.too_many:
            self.kinds, self.newest = {}, None
            logger.info(
                "space %s has %d product vectors (> %d): filtered search scores them in the database",
                self.space.name,
                rows,
                settings.SEARCH_MEMORY_VECTORS_MAX,
            )
            return
        started = time.perf_counter()
        ids, kinds, matrix, self.newest = catalog_selectors.product_vectors_changed_since(self.space, None, self.using)
        self.kinds = self._split(np.asarray(ids, dtype=np.int64), np.asarray(kinds), matrix, {})
        facts = catalog_selectors.product_facts_changed_since(None, self.using)
        self.facts, self.facts_newest = ProductFacts.empty().merged(facts), facts.newest
        logger.info(
            "loaded %d product vectors of space %s into memory in %.1f s",
            len(ids),
            self.space.name,
            time.perf_counter() - started,
        )

    def _load_changes(self) -> None:
        # a few seconds of overlap: a row stamped just before the newest one may commit after it
        since = self.newest - OVERLAP if self.newest is not None else None
        ids, kinds, matrix, newest = catalog_selectors.product_vectors_changed_since(self.space, since, self.using)
        self.newest = max(newest, self.newest) if newest and self.newest else newest or self.newest
        self.kinds = self._split(np.asarray(ids, dtype=np.int64), np.asarray(kinds), matrix, self.kinds)

    def _load_fact_changes(self) -> None:
        since = self.facts_newest - OVERLAP if self.facts_newest is not None else None
        rows = catalog_selectors.product_facts_changed_since(since, self.using)
        newest, known = rows.newest, self.facts_newest
        self.facts_newest = max(newest, known) if newest and known else newest or known
        self.facts = self.facts.merged(rows)

    @staticmethod
    def _split(
        ids: np.ndarray, kinds: np.ndarray, matrix: np.ndarray, into: dict[str, KindMatrix]
    ) -> dict[str, KindMatrix]:
        out = dict(into)
        for kind in sorted(set(kinds.tolist())):
            chosen = kinds == kind
            out[kind] = (
                out[kind].merged(ids[chosen], matrix[chosen])
                if kind in out
                else KindMatrix.build(ids[chosen], matrix[chosen])
            )
        return out

    def vectors(self, kind: str, product_ids: Sequence[int]) -> dict[int, np.ndarray]:
        """The kept unit vectors of ``kind`` of these products (float32), by id; a product without
        one is left out."""
        matrix = self.kinds.get(kind)
        wanted = np.asarray(product_ids, dtype=np.int64)
        if matrix is None or not len(matrix.ids) or not len(wanted):
            return {}
        pos = np.minimum(np.searchsorted(matrix.ids, wanted), len(matrix.ids) - 1)
        present = matrix.ids[pos] == wanted
        rows = matrix.rows[pos[present]].astype(np.float32)
        return {int(pid): row for pid, row in zip(wanted[present].tolist(), rows, strict=True)}

    def nearest(
        self, query: Sequence[float] | np.ndarray, kinds: Sequence[str], product_ids: Sequence[int], k: int
    ) -> dict[str, list[catalog_selectors.Neighbour]]:
        q = np.asarray(query, dtype=np.float32)
        q = q / max(float(np.linalg.norm(q)), 1e-12)
        candidates = np.asarray(product_ids, dtype=np.int64)
        empty = KindMatrix(np.zeros(0, np.int64), np.zeros((0, len(q)), np.float16))
        return {
            kind: [
                catalog_selectors.Neighbour(owner_id=pid, distance=d)
                for pid, d in self.kinds.get(kind, empty).nearest(q, candidates, k)
            ]
            for kind in kinds
        }


_lock = threading.Lock()
_stores: dict[tuple[str, int], MemoryVectors] = {}


def memory_vectors(space: EmbeddingSpace) -> MemoryVectors | None:
    """This process's current in-memory product vectors of ``space`` on the search database, or
    None when keeping them is switched off or the space holds too many."""
    if settings.SEARCH_MEMORY_VECTORS_MAX <= 0:
        return None
    key = (settings.SEARCH_DB_ALIAS, int(space.pk))
    with _lock:
        store = _stores.get(key)
        if store is None or store.space.dim != space.dim:
            # a new active space (an embedder switched in): the previous space's copy is let go
            for old in [k for k in _stores if k[0] == key[0] and k != key]:
                del _stores[old]
            store = _stores[key] = MemoryVectors(space, settings.SEARCH_DB_ALIAS)
    return store.current()


def memory_vectors_reset() -> None:
    """Forget every kept vector (the next filtered search loads them again)."""
    with _lock:
        _stores.clear()

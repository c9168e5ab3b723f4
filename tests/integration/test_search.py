"""Search and alternatives through the real services: real PostgreSQL + pgvector, the real pipeline
(with the test models) computing every vector, no mocks."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from catalog import selectors
from catalog.selectors import ProductFilters
from search import alternatives, services
from tests.support import bad_images as bad
from tests.support.catalogs import SMALL_CATALOG as CATALOG
from tests.support.catalogs import module_catalog

# One catalog for the whole module (built once, below); each test runs in a transaction rolled back
# after it, so what a test changes (stock) does not leak into the next.
pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def catalog(django_db_setup, django_db_blocker, tmp_path_factory, test_models):
    """SMALL_CATALOG, imported and processed by the real pipeline (inline); returns sku → id."""
    with module_catalog(django_db_blocker, tmp_path_factory.mktemp("search-catalog"), CATALOG) as ids:
        yield ids


def skus(hits, ids: dict[str, int]) -> list[str]:
    by_id = {v: k for k, v in ids.items()}
    return [by_id[h.product_id] for h in hits]


def test_hybrid_search_combines_the_signals(catalog):
    hybrid = services.search_text("black t-shirt", limit=8)
    keyword = services.search_text("black t-shirt", signals=("keyword",), limit=8)
    assert {"K2", "K3"} <= set(skus(keyword, catalog)[:3])
    assert {"K2", "K3"} <= set(skus(hybrid, catalog)[:4])
    assert all(h.signals for h in hybrid) and any(len(h.signals) == 4 for h in hybrid)


def test_attributes_named_in_the_query_are_recognised(catalog):
    found = services.recognise_attributes("Black striped T-shirts for men")
    assert found == {"colour": ["black"], "pattern": ["striped"]}
    attr = services.search_text("red dress", signals=("attributes",), limit=8)
    assert skus(attr, catalog)[0] == "R2"  # red and a dress: both attributes match
    assert set(skus(attr, catalog)) == {"R1", "R2", "G1"}  # red, or a dress


def test_predicted_signal_reads_the_photos_not_the_catalog_labels(catalog):
    """The image-only index's word signal ranks by what the attribute heads predicted from each
    photo: every hit was predicted to show the named value (most confident first), whatever the
    catalog says; a query naming no predicted value finds nothing."""
    predicted = {
        pid: image.predicted
        for pid in catalog.values()
        for image in selectors.product_get_by_id(pid).images.all()
        if image.predicted.get("colour")
    }
    assert len(predicted) == len(catalog)
    colour = predicted[catalog["G1"]]["colour"]["value"]
    expected = [pid for pid, p in predicted.items() if p["colour"]["value"] == colour]
    hits = services.search_text(colour.lower(), signals=("predicted",), limit=20)
    assert sorted(h.product_id for h in hits) == sorted(expected)
    confidences = [predicted[h.product_id]["colour"]["confidence"] for h in hits]
    assert confidences == sorted(confidences, reverse=True)
    assert all(h.signals == {"predicted": rank} for rank, h in enumerate(hits, start=1))
    assert services.search_text("zzqx wibble", signals=("predicted",), limit=20) == []
    # filters apply here as everywhere
    only_dresses = services.search_text(
        colour.lower(), signals=("predicted",), filters=ProductFilters(category="women/dresses"), limit=20
    )
    assert {h.product_id for h in only_dresses} == set(expected) & {catalog["R2"], catalog["G1"]}
    # it is not part of the default fusion
    assert all("predicted" not in h.signals for h in services.search_text("green dress", limit=8))


# --- filters and facets -------------------------------------------------------------------------


def test_filters_restrict_every_signal_and_facets_count_the_result_set(catalog):
    result = services.search_products("t-shirt", filters=ProductFilters(colour="black"))
    assert set(skus(result.hits, catalog)) == {"K2", "K3", "K1"} or set(skus(result.hits, catalog)) <= {
        "K2",
        "K3",
        "K1",
    }
    assert dict(result.facets["colour"]) == {"Black": result.total}
    in_tops = services.search_products("cotton", filters=ProductFilters(category="women"))  # with descendants
    assert set(skus(in_tops.hits, catalog)) <= {"R1", "B2", "K3", "K2", "R2", "G1"} and in_tops.total >= 4
    categories = dict(in_tops.facets["category"])
    assert set(categories) <= {"women/tops", "women/dresses"} and sum(categories.values()) == in_tops.total
    cheap = services.search_products("dress", filters=ProductFilters(price_min=Decimal("20"), price_max=Decimal("40")))
    assert skus(cheap.hits, catalog) == ["G1"]
    in_m = services.search_products("t-shirt", filters=ProductFilters(size="M"))
    assert set(skus(in_m.hits, catalog)) <= {"K3", "K2", "R2"}
    assert "B2" not in skus(services.search_products("navy", filters=ProductFilters(in_stock=True)).hits, catalog)
    everything = services.search_products("t-shirt")
    assert sum(n for _, n in everything.facets["price"]) == everything.total
    assert dict(everything.facets["size"]).get("M", 0) >= 2


def test_a_selective_filter_never_starves_the_vector_index(catalog, monkeypatch):
    """Force the HNSW branch (no exact scan) on a filter only one product passes: still found."""
    from catalog import selectors as sel
    from catalog.selectors import search as sel_search

    def exact_scan_max(n: int) -> None:  # the package re-exports the constant its module reads
        monkeypatch.setattr(sel, "EXACT_SCAN_MAX", n)
        monkeypatch.setattr(sel_search, "EXACT_SCAN_MAX", n)

    exact_scan_max(0)
    vector = services.encode_query_text("jacket")
    hits = services.vector_signal(vector, "image", 5, ProductFilters(colour="green"))
    assert skus(hits, catalog) == ["G1"]
    exact_scan_max(20_000)
    assert skus(services.vector_signal(vector, "image", 5, ProductFilters(colour="green")), catalog) == ["G1"]


def test_a_broad_filter_goes_to_the_index_on_the_planners_estimate_without_reading_its_matches(catalog, monkeypatch):
    """The planner's estimate decides first: a filter it expects to match more than EXACT_SCAN_MAX
    products is not read at all (the index path serves it, and finds what it should); one expected
    to match fewer has its ids read, as before."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from catalog.selectors import search as sel_search

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE catalog_product")  # statistics, as autovacuum keeps them
    monkeypatch.setattr(sel_search, "EXACT_SCAN_MAX", 2)
    black = ProductFilters(colour="black")  # 3 of the 8 products, and the statistics know it

    with CaptureQueriesContext(connection) as queries:
        matching = selectors.product_filter_match(black)
    assert matching.ids is None
    assert [q["sql"].startswith("EXPLAIN") for q in queries.captured_queries] == [True]  # the ids were never read

    vector = services.encode_query_text("black t-shirt")
    assert set(skus(services.vector_signal(vector, "image", 5, black, matching), catalog)) == {"K1", "K2", "K3"}

    green = selectors.product_filter_match(ProductFilters(colour="green"))  # 1 product: read
    assert green.ids == (catalog["G1"],)


def test_ef_search_grows_with_the_vector_index_unless_set(catalog, monkeypatch, settings):
    """Unfiltered lookups walk 200 candidates on a small index, 800 on a large one (recall at a million
    products), or what SHOP_SEARCH_HNSW_EF_SEARCH says."""
    from search.caching import catalog_facts_reset

    settings.SEARCH_HNSW_EF_SEARCH = 0
    catalog_facts_reset()
    assert services.hnsw_ef_search() == 200  # 16 vector rows
    assert services.photo_ef_search() == 100
    monkeypatch.setattr(services, "LARGE_INDEX_ROWS", -1)
    catalog_facts_reset()
    assert services.hnsw_ef_search() == 800
    assert services.photo_ef_search() == 800
    settings.SEARCH_HNSW_EF_SEARCH = 300
    assert services.hnsw_ef_search() == 300 and services.photo_ef_search() == 300
    catalog_facts_reset()


def test_one_exact_pass_for_both_kinds_equals_one_scan_per_kind(catalog):
    """The filtered path that scores image and text vectors in one pass ranks exactly as scanning
    each kind on its own does."""
    from catalog import selectors as sel

    filters = ProductFilters(category="women")
    matching = sel.product_filter_match(filters)
    assert matching.ids is not None and len(matching.ids) == 6
    vector = services.encode_query_text("black cotton t-shirt")
    together = services.vector_signals_exact(vector, ["image", "text"], 4, matching.ids)
    for kind in ("image", "text"):
        alone = services.vector_signal(vector, kind, 4, filters, matching)
        assert [(h.product_id, h.signals) for h in together[kind]] == [(h.product_id, h.signals) for h in alone]
        assert [round(h.score, 5) for h in together[kind]] == [round(h.score, 5) for h in alone]
        assert set(skus(together[kind], catalog)) <= {"R1", "B2", "K3", "K2", "R2", "G1"}
    assert services.vector_signals_exact(vector, ["image"], 4, []) == {"image": []}
    with pytest.raises(ValueError, match="kinds"):
        services.vector_signals_exact(vector, ["colour"], 4, matching.ids)


def test_vectors_kept_in_memory_rank_as_the_database_does_and_follow_changes(catalog, settings):
    """The in-memory exact scorer of filtered searches gives the database's exact ranking (float16
    rounding aside), sees a changed vector at the next search, forgets a deleted one, and steps
    aside when the space holds more vectors than allowed."""
    from catalog import services as catalog_services
    from search.vector_memory import memory_vectors, memory_vectors_reset

    memory_vectors_reset()
    space = services._space()
    ids = sorted(catalog.values())
    vector = services.encode_query_text("black cotton t-shirt")
    in_db = selectors.product_vectors_nearest_exact(
        space=space, kinds=["image", "text"], query=list(vector), product_ids=ids, k=5
    )
    store = memory_vectors(space)
    assert store is not None
    in_memory = store.nearest(vector, ["image", "text"], ids, 5)
    for kind in ("image", "text"):
        assert [n.owner_id for n in in_memory[kind]] == [n.owner_id for n in in_db[kind]]
        assert [n.distance for n in in_memory[kind]] == pytest.approx([n.distance for n in in_db[kind]], abs=2e-3)
    # a product's vector changes: the next search sees it (refresh interval 0 in the tests)
    target = catalog["G1"]
    catalog_services.product_vector_upsert(target, space, "text", list(vector))
    hits = services.vector_signals_exact(vector, ["text"], 3, ids)["text"]
    assert hits[0].product_id == target and hits[0].score == pytest.approx(1.0, abs=2e-3)
    # deleted: forgotten
    from catalog.models import ProductVector

    ProductVector.objects.filter(product_id=target, space=space, kind="text").delete()
    assert target not in [h.product_id for h in services.vector_signals_exact(vector, ["text"], 8, ids)["text"]]
    # more vectors than allowed: nothing kept, the database answers
    settings.SEARCH_MEMORY_VECTORS_MAX = 3
    memory_vectors_reset()
    assert memory_vectors(space) is None
    assert services.vector_signals_exact(vector, ["image"], 3, ids)["image"]
    memory_vectors_reset()


def test_filters_and_attributes_from_memory_match_the_database_and_follow_changes(catalog):
    """The products' facts kept in memory select exactly what the database selects and rank the
    attribute signal in the same order; a stock change reaches them through the trigger's stamp;
    a product switched off behind their back is still never shown (the result set is checked)."""
    from catalog.models import Product
    from catalog.services import product_set_stock
    from search.vector_memory import memory_vectors, memory_vectors_reset

    memory_vectors_reset()
    store = memory_vectors(services._space())
    assert store is not None
    cases = [
        ProductFilters(colour="black"),
        ProductFilters(colour="BLACK", pattern="solid"),
        ProductFilters(category="women"),
        ProductFilters(category="men", colour="blue"),
        ProductFilters(price_min=Decimal("15"), price_max=Decimal("45")),
        ProductFilters(in_stock=True),
        ProductFilters(colour="black", exclude_ids=(catalog["K3"],)),
        ProductFilters(category="nowhere"),
    ]
    for filters in cases:
        from_memory, facts = services._filter_match(filters)
        assert facts is not None, filters
        assert sorted(from_memory.ids) == sorted(selectors.product_filter_match(filters).ids), filters
    assert services._filter_match(ProductFilters(size="M"))[1] is None  # sizes: the variants, in the database
    for query, filters in [
        ("black solid t-shirt", ProductFilters(category="women")),
        ("red floral dress", ProductFilters(in_stock=True)),
        ("blue denim jeans", ProductFilters(price_max=Decimal("200"))),
    ]:
        matching = selectors.product_filter_match(filters)
        in_sql = services.attribute_signal(query, 10, filters, matching)
        in_memory = services.attribute_signal(query, 10, filters, matching, store.facts)
        assert in_sql and [(h.product_id, h.score) for h in in_memory] == [(h.product_id, h.score) for h in in_sql]
    k2 = Product.objects.get(pk=catalog["K2"])
    assert k2.pk in services._filter_match(ProductFilters(in_stock=True))[0].ids
    product_set_stock(k2, {"M": 0})
    assert k2.pk not in services._filter_match(ProductFilters(in_stock=True))[0].ids
    Product.objects.filter(pk=catalog["K3"]).update(is_active=False)  # no updated_at: memory lags
    black = ProductFilters(colour="black")
    assert catalog["K3"] in services._filter_match(black)[0].ids
    assert catalog["K3"] not in [h.product_id for h in services.search_text("black t-shirt", filters=black)]
    assert catalog["K3"] not in [h.product_id for h in services.search_products("t-shirt", filters=black).hits]
    # facets counted in memory (sizes and the check in one query) equal the database's count
    for query, filters in [
        ("t-shirt", black),
        ("dress", ProductFilters(category="women")),
        ("blue", ProductFilters(in_stock=True)),
    ]:
        ranking = services._ranked(query, signals=services.DEFAULT_SIGNALS, filters=filters, pool=100, parallel=False)
        assert ranking.facts
        ranking, facets = services.ranked_with_facets(query, filters=filters)
        ranked = ranking.hits
        assert ranked and facets == services.facets_of([h.product_id for h in ranked]), (query, filters)
        assert [h.product_id for h in ranked] == [
            h.product_id for h in services.ranked_products(query, filters=filters)[0]
        ]
    memory_vectors_reset()


def test_signal_queries_on_the_query_threads_rank_as_in_one_thread(catalog):
    """The catalog is committed (module fixture), so the query threads' own connections see it: the
    parallel path must give exactly the sequential ranking, filtered or not, and leave no thread
    or connection behind once closed."""
    import threading

    cases = [
        ("black cotton t-shirt", None),
        ("blakc t-shirt", None),  # corrected before the signals run
        ("striped dress", ProductFilters(category="women")),
        ("black t-shirt", ProductFilters(colour="black", in_stock=True)),
        ("navy", ProductFilters(price_min=Decimal("10"), price_max=Decimal("60"))),
    ]
    signal_sets = [services.DEFAULT_SIGNALS, ("keyword", "attributes", "predicted", "image")]
    try:
        for query, filters in cases:
            for signals in signal_sets:
                one = services.ranked_products(query, signals=signals, filters=filters, parallel=False)
                many = services.ranked_products(query, signals=signals, filters=filters, parallel=True)
                assert [(h.product_id, h.signals) for h in many[0]] == [(h.product_id, h.signals) for h in one[0]]
                assert [round(h.score, 9) for h in many[0]] == [round(h.score, 9) for h in one[0]]
                assert many[1] == one[1]
        assert any(t.name.startswith("search-query") for t in threading.enumerate())
        assert services.ranked_products("blak t-shirt", parallel=True)[1] == "black t-shirt"
    finally:
        services.search_query_threads_close()
    assert not any(t.name.startswith("search-query") for t in threading.enumerate())


def test_under_a_filter_the_keyword_signal_keeps_to_every_word(catalog):
    """With vector signals ranking the filtered products, the keyword list has only products with
    every word; alone, it still fills with products that have some of them."""
    women = ProductFilters(category="women")
    fused = services.search_text("green striped", filters=women, limit=20)
    alone = services.search_text("green striped", signals=("keyword",), filters=women, limit=20)
    every = services.keyword_signal("green striped", 20, women, any_word=False)
    assert len(alone) > len(every)  # nothing green is striped: some words match, not every word
    assert {h.product_id for h in fused if "keyword" in h.signals} == {h.product_id for h in every}


def test_a_category_named_exactly_comes_before_its_plural(catalog):
    """ "earring" matches both "Earring" and "Earrings" (plurals are folded); the one named as written
    ranks first, and the other is still found."""
    from catalog.services import ProductInput, category_ensure_path, product_upsert

    services.search_caches_reset()
    plural = category_ensure_path(["Accessories", "Earrings"])
    single = category_ensure_path(["Accessories", "Earring"])
    made = {}
    for sku, category in (("E1", plural), ("E2", single), ("E3", plural), ("E4", single)):
        made[sku] = product_upsert(
            ProductInput(sku=sku, title="Metal hoops", price=Decimal("9"), colour="Metal", category=category)
        )[0].pk
    try:
        hits = services.attribute_signal("metal earring", 10)
        assert [h.product_id for h in hits] == [made["E2"], made["E4"], made["E1"], made["E3"]]
        hits = services.attribute_signal("metal earrings", 10)
        assert [h.product_id for h in hits] == [made["E1"], made["E3"], made["E2"], made["E4"]]
    finally:
        services.search_caches_reset()  # the vocabulary cache must not keep this test's categories


def test_a_category_is_read_with_its_place_in_the_tree(catalog):
    """The categories signal reads each leaf category by its name and by its name with its parent's:
    two leaves called "Socks", one under Men and one under Baby, are told apart by a query that names
    the department, and are both close to one that does not."""
    from catalog.services import category_ensure_path

    services.search_caches_reset()
    men = category_ensure_path(["Men", "Socks"])
    baby = category_ensure_path(["Baby", "Socks"])
    try:
        leaves = {pk: (name, in_tree) for pk, name, in_tree in selectors.leaf_categories_in_tree()}
        assert leaves[men.pk] == ("socks", "socks (men)")
        assert leaves[baby.pk] == ("socks", "socks (baby)")
        assert leaves[catalog_category_id(catalog, "R1")] == ("tops", "tops (women)")

        for_men = services.nearest_categories("socks for men")
        for_baby = services.nearest_categories("socks for a baby")
        assert for_men[men.pk] > for_men[baby.pk]
        assert for_baby[baby.pk] > for_baby[men.pk]
        plain = services.nearest_categories("socks")
        assert {men.pk, baby.pk} <= set(plain)  # the name alone is read too
    finally:
        services.search_caches_reset()


def catalog_category_id(ids: dict[str, int], sku: str) -> int:
    product = selectors.product_get_by_id(ids[sku])
    assert product is not None and product.category_id is not None
    return product.category_id


def test_pagination_is_stable_and_complete(catalog):
    first = services.search_products("cotton", page=1, page_size=3)
    second = services.search_products("cotton", page=2, page_size=3)
    again = services.search_products("cotton", page=1, page_size=3)
    assert [h.product_id for h in first.hits] == [h.product_id for h in again.hits]
    assert not {h.product_id for h in first.hits} & {h.product_id for h in second.hits}
    whole = services.search_products("cotton", page=1, page_size=100)
    assert [h.product_id for h in first.hits + second.hits] == [h.product_id for h in whole.hits][:6]
    assert first.pages == -(-whole.total // 3)
    with pytest.raises(ValueError, match="page"):
        services.search_products("cotton", page=0)


def test_empty_nonsense_and_foreign_queries(catalog):
    for empty in ("", "   ", "\n"):
        result = services.search_products(empty)
        assert result.total == 0 and result.hits == []
    nonsense = services.search_products("xqzvwk")
    assert not any("keyword" in h.signals for h in nonsense.hits)
    assert nonsense.total == 0 or nonsense.note  # says these are only the closest looks
    german = services.search_products("rotes Kleid")  # German: no keyword match, vectors still answer
    assert german.total > 0 and german.note
    long = services.search_products("shirt " * 500)
    assert len(long.query) <= services.MAX_QUERY_CHARS


def test_typos_are_corrected_for_every_signal_and_real_words_never(catalog):
    result = services.search_products("blakc t-shrt", signals=("keyword",))
    assert result.corrected_query.lower().split()[0] == "black"
    assert {"K2", "K3"} <= set(skus(result.hits, catalog))
    # the attribute signal reads the corrected colour too
    attributes = services.search_text("blakc t-shirt", signals=("attributes",))
    assert attributes and attributes == services.search_text("black t-shirt", signals=("attributes",))
    # correctly spelt words the catalog lacks stay as written, and no "did you mean" appears
    plain = services.search_products("something warm for a cold winter walk")
    assert plain.corrected_query == ""
    # a correction that finds nothing with every word is not offered as "did you mean"
    unsupported = services.search_products("blakc lawnmower")
    assert unsupported.corrected_query == ""


def test_query_vectors_are_cached(catalog):
    services._encode_cached.cache_clear()
    services.encode_query_text("Red dress")
    services.encode_query_text("  red dress ")
    info = services._encode_cached.cache_info()
    assert info.misses == 1 and info.hits == 1


# --- similar items and alternatives -------------------------------------------------------------


def test_alternatives_for_an_out_of_stock_product(catalog):
    found = alternatives.alternatives_for(catalog["B2"], limit=3)
    assert found, "an out-of-stock t-shirt has in-stock alternatives"
    briefs = selectors.product_briefs([a.product_id for a in found])
    assert all(briefs[a.product_id].in_stock for a in found)
    assert catalog["B2"] not in [a.product_id for a in found]
    # the same design in another colour, in stock, comes first, and says so
    assert found[0].product_id in (catalog["R1"], catalog["K3"]) and found[0].reason.startswith("same design in ")
    assert {briefs[a.product_id].category_path for a in found} == {"women/tops"}
    assert all(a.reason for a in found)


def test_alternatives_prefer_the_shoppers_size(catalog):
    found = alternatives.alternatives_for(catalog["R1"], size="M", limit=3)
    assert found[0].in_size and catalog["K3"] == found[0].product_id  # same design, in M


def test_alternatives_when_nothing_is_in_stock(catalog):
    from catalog.models import Product
    from catalog.services import product_set_stock

    for product in Product.objects.all():  # rolled back after the test
        product_set_stock(product, {v.size: 0 for v in product.variants.all()})
    assert alternatives.alternatives_for(catalog["R1"]) == []
    similar = alternatives.similar_products(catalog["R1"], limit=3)
    assert len(similar) == 3  # similar items still show, stock aside


def test_similar_items_are_diverse(catalog):
    similar = alternatives.similar_products(catalog["K2"], limit=5)
    assert len({a.product_id for a in similar}) == 5 and catalog["K2"] not in [a.product_id for a in similar]
    with pytest.raises(LookupError):
        alternatives.similar_products(10**9)


# --- photo search ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scene_models(tmp_path_factory, test_models):
    """A models folder with the test embedder and a tiny parser trained on synthetic person photos."""
    from tests.support.scenes import train_scene_parser

    root = tmp_path_factory.mktemp("scene-models")
    (root / "embedder").symlink_to(Path(test_models) / "embedder")
    train_scene_parser(root)
    return root


@pytest.fixture
def scene_parser(scene_models, settings):
    from tests.support.checkpoints import parser_serve, reset_parser_cache

    settings.MODELS_DIR = scene_models
    reset_parser_cache()
    parser_serve(scene_models)
    yield
    settings.MODELS_DIR = django_settings.MODELS_DIR
    reset_parser_cache()


def test_photo_of_a_person_gives_results_per_garment_with_boxes(catalog, scene_parser):
    from tests.support.scenes import scene_photo

    photo = scene_photo(200)
    results = services.search_photo(photo, limit=5)
    labels = [r.label for r in results]
    assert {"top", "bottom", "footwear"} <= set(labels), labels
    for r in results:
        x0, y0, x1, y1 = r.box
        assert 0 <= x0 < x1 <= photo.width and 0 <= y0 < y1 <= photo.height
        assert len(r.hits) <= 5
    box = {r.label: r.box for r in results}
    assert box["footwear"][3] > box["bottom"][1] > box["top"][1]  # top above bottom above shoes
    # the shopper picks one garment, or crops
    picked = services.search_photo(photo, garment=labels.index("bottom"))
    assert [r.label for r in picked] == ["bottom"]
    x0, y0, x1, y1 = box["top"]
    cropped = services.search_photo(photo, crop=(0, 0, photo.width, (y0 + y1) // 2 + 10))
    assert all(r.box[1] >= 0 for r in cropped)
    with pytest.raises(services.PhotoError, match="too small"):
        services.search_photo(photo, crop=(0, 0, 5, 5))
    with pytest.raises(services.PhotoError, match="pick one of"):
        services.search_photo(photo, garment=len(results) + 3)


def test_a_large_photo_is_parsed_scaled_down_and_its_boxes_are_in_its_own_pixels(catalog, scene_parser, settings):
    """A phone's photo is parsed at SEARCH_PHOTO_MAX_SIDE: the same garments are found as at full size, with
    boxes in the photo's own pixels (here the cap halves the photo)."""
    from tests.support.scenes import scene_photo

    photo = scene_photo(200)
    whole = {r.label: r for r in services.search_photo(photo, limit=3)}
    settings.SEARCH_PHOTO_MAX_SIDE = max(photo.size) // 2
    scaled = {r.label: r for r in services.search_photo(photo, limit=3)}
    assert set(scaled) == set(whole) and {"top", "bottom"} <= set(scaled)
    for label, found in scaled.items():
        x0, y0, x1, y1 = found.box
        assert 0 <= x0 < x1 <= photo.width and 0 <= y0 < y1 <= photo.height
        assert max(abs(a - b) for a, b in zip(found.box, whole[label].box, strict=True)) <= 6, (label, found.box)
        assert [h.product_id for h in found.hits[:1]] == [h.product_id for h in whole[label].hits[:1]]
    # a crop of the large photo: boxes still in the photo's pixels, inside the crop
    top = whole["top"].box
    cropped = services.search_photo(photo, crop=(0, top[1], photo.width, photo.height))
    assert cropped and all(r.box[1] >= top[1] and r.box[3] <= photo.height for r in cropped)


def test_a_garment_of_a_rare_kind_looks_further_for_products_of_its_kind(catalog):
    """The nearest products are all of another kind (every product but the farthest shows a top): the
    lookup for a skirt widens its pool until it finds the one product that shows a bottom. (No product
    has a category here, so the parser's labels of their photos say their kinds.)"""
    import numpy as np

    from catalog.models import Product, ProductImage, ProductVector

    Product.objects.update(category=None)
    services.search_caches_reset()
    space = services._space()
    rows = ProductVector.objects.filter(space=space, kind="image").values_list("product_id", "vector")
    ids = [pid for pid, _ in rows]
    vectors = np.array([np.asarray(v, dtype=np.float32) for _, v in rows])
    query = vectors[0]
    farthest = ids[int(np.argmin(vectors @ query))]
    assert len(ids) > 5  # more than the first pool (limit 1 × 4)
    ProductImage.objects.filter(product_id__in=ids).update(garments=[{"label": "top", "area": 5000}])
    ProductImage.objects.filter(product_id=farthest).update(garments=[{"label": "bottom", "area": 5000}])
    hits = services._garment_hits(query, "bottom", 1, None, space)
    assert [h.product_id for h in hits] == [farthest]
    tops = services._garment_hits(query, "top", 3, None, space)
    assert len(tops) == 3 and farthest not in [h.product_id for h in tops]


def test_a_products_category_says_its_kind_before_the_parsers_label(catalog):
    """The parser called every product photo a top (as the trained parser does with photos of a product
    alone): a photo's trousers still find the products filed under trousers, and dresses, never tops."""
    from catalog.models import ProductImage

    ProductImage.objects.update(garments=[{"label": "top", "area": 5000}])
    services.search_caches_reset()
    space = services._space()
    from catalog.selectors import product_vectors

    query = product_vectors([catalog["B1"]], space, "image")[catalog["B1"]]
    bottoms = services._garment_hits(query, "bottom", 5, None, space)
    assert set(skus(bottoms, catalog)) == {"B1", "R2", "G1"}  # Men > Trousers, Women > Dresses
    tops = services._garment_hits(query, "top", 8, None, space)
    assert "B1" not in skus(tops, catalog) and {"K1", "R1"} <= set(skus(tops, catalog))


def test_the_index_scan_keeps_the_products_a_category_gate_lets_through(catalog):
    """A garment's lookup tests each candidate's category inside the index scan: the products of the
    allowed categories, and of a category the gate cannot judge, nearest first, as an exact search of
    those products would rank them."""
    import numpy as np

    from catalog.models import Product, ProductVector
    from catalog.selectors import CategoryGate, vector_nearest

    space = services._space()
    category_of = dict(Product.objects.values_list("id", "category_id"))
    trousers, unjudged = catalog_category_id(catalog, "B1"), catalog_category_id(catalog, "K1")
    judged = tuple(sorted({c for c in category_of.values() if c is not None and c != unjudged}))
    gate = CategoryGate(allowed=(trousers,), judged=judged)
    rows = ProductVector.objects.filter(space=space, kind="image").values_list("product_id", "vector")
    vectors = {pid: np.asarray(v, dtype=np.float32) for pid, v in rows}
    query = vectors[catalog["R1"]]
    passing = [pid for pid in vectors if category_of[pid] in (trousers, unjudged, None)]
    assert 2 <= len(passing) < len(vectors)
    exact = sorted(passing, key=lambda pid: (-float(vectors[pid] @ query / np.linalg.norm(vectors[pid])), pid))
    found = vector_nearest(table="product", space=space, kind="image", query=query, k=len(passing), categories=gate)
    assert [n.owner_id for n in found] == exact
    with pytest.raises(ValueError, match="product table only"):
        vector_nearest(table="image", space=space, kind="cutout", query=query, categories=gate)


def test_photo_with_no_garment_finds_nothing(catalog, scene_parser):
    from tests.support.scenes import scene_photo

    assert services.search_photo(scene_photo(300, garments=False)) == []


def test_photo_search_accepts_any_readable_photo(catalog, scene_parser):
    from PIL import Image

    image = Image.open(io.BytesIO(bad.cmyk_jpeg()))
    assert isinstance(services.search_photo(image), list)


# --- query understanding and in-stock first (issue 20) -----------------------------------------------


def _prices(hits, catalog) -> dict[str, float]:
    from catalog.models import Product

    by_id = {p.pk: (p.sku, float(p.price)) for p in Product.objects.filter(pk__in=[h.product_id for h in hits])}
    return dict(by_id[h.product_id] for h in hits)


def test_prices_sizes_and_departments_named_in_the_query_become_filters_the_shopper_can_undo(catalog):
    from catalog.models import Product

    result = services.search_products("t-shirt under 16 euros")
    assert result.hits and all(price <= 16 for price in _prices(result.hits, catalog).values())
    assert [(p.key, p.label, p.phrase) for p in result.understood if p.key == "price"] == [
        ("price", "up to 16.00 EUR", "under 16 euros")
    ]
    undone = services.search_products("t-shirt under 16 euros", ignore=frozenset({"price"}))
    assert "K2" in skus(undone.hits, catalog) and undone.ignored == ["price"]  # 18 EUR: back once undone
    between = services.search_products("dress between 40 and 50 €")
    assert set(skus(between.hits, catalog)) == {"R2"}
    # a size in stock: R1 and B2 have none in M
    sized = services.search_products("t-shirt in size M")
    assert set(skus(sized.hits, catalog)) <= {"K3", "K2", "R2"} and {"K3", "K2"} <= set(skus(sized.hits, catalog))
    assert any(p.key == "size" and p.label == "size M" for p in sized.understood)
    assert not any(p.key == "size" for p in services.search_products("t-shirt size 99").understood)  # no such size
    # departments: only where the catalog has them
    assert not any(p.key == "department" for p in services.search_products("jacket for men").understood)
    Product.objects.filter(sku__in=["B1", "K1"]).update(attributes={"index_group": "Menswear"})
    Product.objects.exclude(sku__in=["B1", "K1"]).update(attributes={"index_group": "Ladieswear"})
    services.search_caches_reset()
    men = services.search_products("black jacket for men")
    assert set(skus(men.hits, catalog)) <= {"B1", "K1"} and "K1" in skus(men.hits, catalog)
    assert [p.label for p in men.understood if p.key == "department"] == ["men"]
    women = services.search_products("women's black t-shirt")
    assert "K1" not in skus(women.hits, catalog) and "K2" in skus(women.hits, catalog)
    # colours and categories are boosts, shown as chips too; synonyms name the catalog's category
    jeans = services.search_products("blue jeans", signals=("attributes",))
    assert skus(jeans.hits, catalog)[0] == "B1"
    assert {("colour", "colour: blue"), ("category", "category: trousers")} <= {
        (p.key, p.label) for p in jeans.understood
    }
    with pytest.raises(ValueError, match="unknown understood part"):
        services.search_products("dress", ignore=frozenset({"colourz"}))


def test_sold_out_products_sink_below_in_stock_ones_but_stay_findable_by_name(catalog):
    # B2 is sold out: below an in-stock product that matches about as well, above one clearly worse
    Hit = services.Hit
    close = [Hit(catalog["B2"], 1.0), Hit(catalog["R1"], 0.95), Hit(catalog["K3"], 0.8)]
    assert skus(services.in_stock_first(close, "summer top"), catalog) == ["R1", "B2", "K3"]
    named = skus(services.search_text("navy cotton t-shirt", limit=8), catalog)
    assert named[0] == "B2"  # its title has every word: not sunk
    hits = [services.Hit(pid, 1.0) for pid in (catalog["B2"], catalog["R1"], catalog["K3"])]
    assert skus(services.in_stock_first(hits, "summer top"), catalog) == ["R1", "K3", "B2"]
    assert skus(services.in_stock_first(hits, "navy t-shirt"), catalog)[0] == "B2"  # named: every word in its title
    # "t-shirt" is in four titles here: a kind of product, not a name — the sold-out one sinks
    four = [*hits, services.Hit(catalog["K2"], 1.0)]
    assert skus(services.in_stock_first(four, "t-shirt"), catalog) == ["R1", "K3", "K2", "B2"]


def test_a_title_typed_in_full_names_its_product_however_many_titles_share_its_words(catalog, monkeypatch):
    monkeypatch.setattr(services, "NAMED_MAX", 0)  # no title names a product by sharing the query's words
    hits = [services.Hit(pid, 1.0) for pid in (catalog["B2"], catalog["R1"], catalog["K3"])]
    assert skus(services.in_stock_first(hits, "navy t-shirt"), catalog)[-1] == "B2"  # sunk
    assert skus(services.in_stock_first(hits, "Navy  cotton T-shirt"), catalog)[0] == "B2"  # its very title


def test_products_with_every_word_are_ranked_up_to_the_cap(catalog, monkeypatch):
    """Below ALL_WORDS_CANDIDATES the keyword ranking is exact (every product with every word, by
    ts_rank_cd); above it only that many of them are ranked, so a broad query on a large catalog stays
    bounded."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM catalog_product p, websearch_to_tsquery('english', 'dress') q "
            "WHERE p.is_active AND p.search_document @@ q ORDER BY ts_rank_cd(p.search_document, q) DESC, id"
        )
        exact = [row[0] for row in cursor.fetchall()]
    assert len(exact) >= 2
    hits, every = services.keyword_signal_counted("dress", 50, None, any_word=False)
    assert [h.product_id for h in hits] == exact and every == len(exact)
    monkeypatch.setattr(services, "ALL_WORDS_CANDIDATES", 1)
    capped, every = services.keyword_signal_counted("dress", 50, None, any_word=False)
    assert every == 1 and len(capped) == 1 and capped[0].product_id in exact

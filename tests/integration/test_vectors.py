"""pgvector in the real PostgreSQL: the extension, HNSW indexes per space, spaces side by side."""

from __future__ import annotations

import numpy as np
import pytest
from django.db import connection

from catalog.models import EmbeddingSpace, Product, ProductVector, hnsw_index_name
from catalog.selectors import vector_nearest
from catalog.services import embedding_space_ensure, product_vector_upsert
from tests.support.factories import ProductFactory

pytestmark = pytest.mark.django_db


def unit_rows(n: int, dim: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def make_products(n: int) -> list[Product]:
    Product.objects.bulk_create(ProductFactory.build_batch(n, price=1))
    return list(Product.objects.order_by("sku"))


def bulk_vectors(products: list[Product], space: EmbeddingSpace, kind: str, rows: np.ndarray) -> None:
    ProductVector.objects.bulk_create(
        [
            ProductVector(product=p, space=space, kind=kind, vector=row.tolist())
            for p, row in zip(products, rows, strict=True)
        ]
    )


def test_pgvector_extension_is_installed():
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cursor.fetchone()
    assert row is not None, "the vector extension is missing"
    major, minor, *_ = (int(x) for x in row[0].split("."))
    assert (major, minor) >= (0, 5)  # HNSW arrived in 0.5.0


def test_space_registration_creates_partial_hnsw_indexes_and_is_idempotent():
    space = embedding_space_ensure(name="test-clip@1", model_name="test-clip", dim=16, modality="image_text")
    again = embedding_space_ensure(name="test-clip@1", model_name="test-clip", dim=16, modality="image_text")
    assert again.pk == space.pk
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE %s", [f"%_s{space.pk}_%"])
        indexes = dict(cursor.fetchall())
    expected = {
        hnsw_index_name(t, space, k)
        for t, k in [("image", "cutout"), ("image", "full"), ("product", "text"), ("product", "image")]
    }
    assert set(indexes) == expected
    for definition in indexes.values():  # half precision in the index; the rows keep full precision
        assert "USING hnsw" in definition and "::halfvec(16)) halfvec_cosine_ops" in definition
    with pytest.raises(ValueError, match="already holds 16-d"):
        embedding_space_ensure(name="test-clip@1", model_name="test-clip", dim=32, modality="image_text")


def test_nearest_neighbour_query_uses_the_hnsw_index():
    space = embedding_space_ensure(name="hnsw-test@1", model_name="hnsw-test", dim=32, modality="image_text")
    products = make_products(3000)
    rows = unit_rows(len(products), 32, seed=1)
    bulk_vectors(products, space, "image", rows)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE catalog_productvector")
        literal = "[" + ",".join(f"{x:.6f}" for x in rows[7]) + "]"
        cursor.execute(
            "EXPLAIN SELECT product_id FROM catalog_productvector WHERE space_id = %s AND kind = 'image' "
            "ORDER BY (vector::halfvec(32)) <=> %s::halfvec(32) LIMIT 10",
            [space.pk, literal],
        )
        plan = "\n".join(r[0] for r in cursor.fetchall())
    assert f"Index Scan using {hnsw_index_name('product', space, 'image')}" in plan, plan

    hits = vector_nearest(table="product", space=space, kind="image", query=rows[7].tolist(), k=10)
    assert hits[0].owner_id == products[7].pk and hits[0].distance == pytest.approx(0.0, abs=1e-5)
    exact = np.argsort(-(rows @ rows[7]))[:10]
    recall = len({products[i].pk for i in exact} & {h.owner_id for h in hits}) / 10
    assert recall >= 0.9


def test_a_full_precision_index_of_an_earlier_version_is_rebuilt_in_half_precision():
    space = embedding_space_ensure(name="upgrade@1", model_name="upgrade", dim=8, modality="image_text")
    name = hnsw_index_name("product", space, "image")
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX {name}")
        cursor.execute(
            f"CREATE INDEX {name} ON catalog_productvector USING hnsw ((vector::vector(8)) vector_cosine_ops) "
            f"WHERE space_id = %s AND kind = 'image'",
            [space.pk],
        )
    embedding_space_ensure(name="upgrade@1", model_name="upgrade", dim=8, modality="image_text")
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [name])
        (definition,) = cursor.fetchone()
    assert "::halfvec(8)) halfvec_cosine_ops" in definition and f"space_id = {space.pk}" in definition


def test_spaces_of_different_dimensions_live_side_by_side():
    small = embedding_space_ensure(name="old@1", model_name="old", dim=8, modality="text", activate=True)
    large = embedding_space_ensure(name="new@2", model_name="new", dim=24, modality="text")
    product = ProductFactory(sku="SIDE", title="Side by side", price=1)
    other = ProductFactory(sku="OTHER", title="Other", price=1)
    product_vector_upsert(product.pk, small, "text", unit_rows(1, 8, 2)[0].tolist())
    product_vector_upsert(other.pk, small, "text", unit_rows(1, 8, 3)[0].tolist())
    q24 = unit_rows(1, 24, 4)[0].tolist()
    product_vector_upsert(product.pk, large, "text", q24)
    product_vector_upsert(product.pk, large, "text", q24)  # idempotent: still one row per (product, space, kind)
    assert ProductVector.objects.filter(product=product).count() == 2
    assert [h.owner_id for h in vector_nearest(table="product", space=large, kind="text", query=q24, k=5)] == [
        product.pk
    ]
    assert len(vector_nearest(table="product", space=small, kind="text", query=[1.0] * 8, k=5)) == 2
    with pytest.raises(ValueError, match="holds 24"):
        product_vector_upsert(product.pk, large, "text", [0.1] * 8)
    # Activating the new space deactivates the old one of the same modality: a switch, not a migration.
    embedding_space_ensure(name="new@2", model_name="new", dim=24, modality="text", activate=True)
    assert list(EmbeddingSpace.objects.filter(is_active=True).values_list("name", flat=True)) == ["new@2"]

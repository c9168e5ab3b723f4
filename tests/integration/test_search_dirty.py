"""Derived search data through the dirty flag (issue 23): whoever writes a product — the Django
admin's change form, the services, plain SQL — its keyword document follows at once and its text
vector follows through the periodic refresh. Real PostgreSQL (the triggers of catalog 0012), the
real admin form, the real models."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse

from catalog import services as catalog_services
from catalog.models import Category, Product, ProductVector
from tests.support.factories import CategoryFactory, ProductFactory

pytestmark = pytest.mark.django_db(transaction=True)


def keyword_match(product: Product, word: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT search_document @@ plainto_tsquery('english', %s) FROM catalog_product WHERE id = %s",
            [word, product.pk],
        )
        return bool(cursor.fetchone()[0])


def admin_form_data(client: Client, url: str) -> dict[str, Any]:
    """Every field the admin change page would post back unchanged: the product's form and each
    inline formset with its management form, read from the page's own forms."""
    response = client.get(url)
    assert response.status_code == 200
    forms = [response.context["adminform"].form]
    data: dict[str, Any] = {}
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        forms.append(formset.management_form)
        forms.extend(formset.forms)
    for form in forms:
        for name in form.fields:
            value = form[name].value()
            if value is None or value is False:
                continue
            data[form.add_prefix(name)] = "on" if value is True else value
    return data


def make_product(sku: str = "Z1", title: str = "Plain party dress") -> Product:
    with transaction.atomic():
        return ProductFactory(
            sku=sku, title=title, price=Decimal("30"), category=CategoryFactory(name="Knitwear"), stock={"M": 2}
        )


def test_an_admin_edit_is_findable_by_its_new_words(client, django_user_model, test_models):
    from search import services as search_services
    from workers.services import products_text_refresh

    product = make_product()
    products_text_refresh()  # the text vector of the product as created
    before = [float(x) for x in ProductVector.objects.get(product=product, kind="text").vector]
    assert not Product.objects.get(pk=product.pk).search_dirty

    client.force_login(django_user_model.objects.create_superuser("root", password="x"))
    url = reverse("admin:catalog_product_change", args=[product.pk])
    data = admin_form_data(client, url)
    data["title"] = "Zebrafrog party dress"
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""

    edited = Product.objects.get(pk=product.pk)
    assert edited.title == "Zebrafrog party dress"
    assert edited.search_dirty  # the text vector is now behind the text
    assert keyword_match(edited, "zebrafrog")  # the keyword document followed in the same statement
    assert not keyword_match(edited, "plain")
    hits = search_services.search_text("zebrafrog", signals=("keyword",), limit=5)
    assert [h.product_id for h in hits][:1] == [product.pk]

    assert products_text_refresh() == 1
    after = Product.objects.get(pk=product.pk)
    assert not after.search_dirty
    assert [float(x) for x in ProductVector.objects.get(product=product, kind="text").vector] != before
    assert after.text_hash == catalog_services.product_text_hash(after)
    assert products_text_refresh() == 0  # nothing left to do


def test_only_a_change_of_the_search_text_marks_a_product(test_models):
    from workers.services import products_text_refresh

    product = make_product()
    products_text_refresh()
    Product.objects.filter(pk=product.pk).update(price=Decimal("12"), is_active=False)
    with transaction.atomic():
        catalog_services.product_set_stock(Product.objects.get(pk=product.pk), {"M": 0})
    assert not Product.objects.get(pk=product.pk).search_dirty
    with connection.cursor() as cursor:  # plain SQL is caught too
        cursor.execute("UPDATE catalog_product SET description = 'velvet' WHERE id = %s", [product.pk])
    marked = Product.objects.get(pk=product.pk)
    assert marked.search_dirty and keyword_match(marked, "velvet")


def test_renaming_a_category_refreshes_its_products(test_models):
    from workers.services import products_text_refresh

    product = make_product()
    products_text_refresh()
    Category.objects.filter(pk=product.category_id).update(name="Gowns", full_name="Gowns")
    renamed = Product.objects.get(pk=product.pk)
    assert renamed.search_dirty and keyword_match(renamed, "gowns") and not keyword_match(renamed, "knitwear")


def test_a_refresh_that_dies_before_it_commits_leaves_the_product_dirty(test_models):
    """The refresh holds the rows it takes until it commits (an edit made meanwhile waits, then marks
    the product again); a refresh that dies first leaves the flag as it was."""
    from workers.services import products_text_refresh

    product = make_product()
    products_text_refresh()
    Product.objects.filter(pk=product.pk).update(title="Amber party dress")

    class WorkerDied(Exception):
        pass

    with pytest.raises(WorkerDied), transaction.atomic():
        claimed = catalog_services.products_search_claim(10)
        assert [p.pk for p in claimed] == [product.pk]
        raise WorkerDied  # before it commits
    assert Product.objects.get(pk=product.pk).search_dirty
    assert products_text_refresh() == 1
    assert not Product.objects.get(pk=product.pk).search_dirty

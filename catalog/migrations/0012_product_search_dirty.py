"""Derived search data through a dirty flag.

``catalog_product.search_dirty`` says the product's text changed since its text vector was last
computed. A trigger on ``catalog_product`` sets it whenever a column the search text is made of
changes (title, description, colour, pattern, category, attributes), whoever writes the row — the
services, the Django admin, bulk SQL — and recomputes the keyword ``search_document`` in the same
statement, so keyword search is right the moment the write commits. A trigger on
``catalog_category`` does the same for the products of a renamed category. The workers' periodic
``products_text_refresh`` embeds the dirty products' text and clears the flag (partial index below).

Before this, the search document and the text vector were refreshed only by
``catalog.services.product_upsert``: an edit through the admin (which saves through the ORM) was
never findable by its new words.

Existing rows start dirty: the refresh re-embeds only those whose text differs from the text last
embedded (``text_hash``), so this costs one hash per product.
"""

from django.db import migrations, models

FUNCTIONS = """
CREATE OR REPLACE FUNCTION catalog_product_search_document(
    title text, description text, colour text, pattern text, category bigint
) RETURNS tsvector AS $$
    SELECT to_tsvector('english', concat_ws(' ', title, description, colour, pattern,
        (SELECT c.full_name FROM catalog_category c WHERE c.id = category)))
$$ LANGUAGE sql STABLE;

CREATE OR REPLACE FUNCTION catalog_product_search_mark() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT'
       OR NEW.title IS DISTINCT FROM OLD.title
       OR NEW.description IS DISTINCT FROM OLD.description
       OR NEW.colour IS DISTINCT FROM OLD.colour
       OR NEW.pattern IS DISTINCT FROM OLD.pattern
       OR NEW.category_id IS DISTINCT FROM OLD.category_id
       OR NEW.attributes IS DISTINCT FROM OLD.attributes THEN
        NEW.search_document := catalog_product_search_document(
            NEW.title, NEW.description, NEW.colour, NEW.pattern, NEW.category_id);
        IF TG_OP = 'UPDATE' THEN
            NEW.search_dirty := true;
        END IF;
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION catalog_category_search_mark() RETURNS trigger AS $$
BEGIN
    IF NEW.name IS DISTINCT FROM OLD.name OR NEW.full_name IS DISTINCT FROM OLD.full_name THEN
        UPDATE catalog_product p
        SET search_dirty = true,
            search_document = catalog_product_search_document(p.title, p.description, p.colour, p.pattern, p.category_id)
        WHERE p.category_id = NEW.id;
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS product_search_mark ON catalog_product;
CREATE TRIGGER product_search_mark
BEFORE INSERT OR UPDATE ON catalog_product
FOR EACH ROW EXECUTE FUNCTION catalog_product_search_mark();

DROP TRIGGER IF EXISTS category_search_mark ON catalog_category;
CREATE TRIGGER category_search_mark
AFTER UPDATE OF name, full_name ON catalog_category
FOR EACH ROW EXECUTE FUNCTION catalog_category_search_mark();

UPDATE catalog_product p
SET search_document = catalog_product_search_document(p.title, p.description, p.colour, p.pattern, p.category_id);
"""

REVERSE = """
DROP TRIGGER IF EXISTS category_search_mark ON catalog_category;
DROP TRIGGER IF EXISTS product_search_mark ON catalog_product;
DROP FUNCTION IF EXISTS catalog_category_search_mark();
DROP FUNCTION IF EXISTS catalog_product_search_mark();
DROP FUNCTION IF EXISTS catalog_product_search_document(text, text, text, text, bigint);
"""


class Migration(migrations.Migration):
    dependencies = [("catalog", "0011_pgvector_08_halfvec_indexes")]

    operations = [
        migrations.AddField(
            model_name="product",
            name="search_dirty",
            field=models.BooleanField(default=True, editable=False),
        ),
        migrations.AddIndex(
            model_name="product",
            index=models.Index(
                fields=["id"], condition=models.Q(search_dirty=True), name="product_search_dirty"
            ),
        ),
        migrations.RunSQL(FUNCTIONS, REVERSE),
    ]

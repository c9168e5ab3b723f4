"""``catalog_product.updated_at`` indexed and moved whenever ``has_stock`` changes, so that a search
process keeping the products' filterable facts in memory (search/fact_memory.py) finds every change
with one index lookup: Django's ``save()`` sets ``updated_at`` itself; the stock flag changes in the
trigger of migration 0008, which now stamps the row too."""

from django.db import migrations

KEEP_STAMPED = """
CREATE OR REPLACE FUNCTION catalog_product_has_stock_keep() RETURNS trigger AS $$
BEGIN
    NEW.has_stock := EXISTS (SELECT 1 FROM catalog_variant v WHERE v.product_id = NEW.id AND v.stock > 0);
    IF TG_OP = 'UPDATE' AND NEW.has_stock IS DISTINCT FROM OLD.has_stock THEN
        NEW.updated_at := clock_timestamp();
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;
"""

KEEP_UNSTAMPED = """
CREATE OR REPLACE FUNCTION catalog_product_has_stock_keep() RETURNS trigger AS $$
BEGIN
    NEW.has_stock := EXISTS (SELECT 1 FROM catalog_variant v WHERE v.product_id = NEW.id AND v.stock > 0);
    RETURN NEW;
END
$$ LANGUAGE plpgsql;
"""


class Migration(migrations.Migration):
    dependencies = [("catalog", "0008_product_has_stock")]

    operations = [
        migrations.RunSQL(KEEP_STAMPED, KEEP_UNSTAMPED),
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS product_updated_at ON catalog_product (updated_at)",
            "DROP INDEX IF EXISTS product_updated_at",
        ),
    ]

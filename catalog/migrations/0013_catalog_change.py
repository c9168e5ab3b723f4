"""``catalog_change``: one row whose ``version`` is a fresh random UUID for each committed transaction that
wrote anything a shopper sees. Every row written to the tables below queues a deferred trigger; at
commit the first of them sets a new version (random: never used before, by this database or any other,
so a rolled-back transaction's answers or another cluster's can never be mistaken for these, and a
database restored from a backup gets back the version that went with its data) and the rest return
at once. Deferred, the row is locked only for the instant before commit, not for a whole import.
TRUNCATE has no row triggers: a statement trigger sets the version then (and puts the row back
when ``catalog_change`` itself was truncated with the others, as a test database's flush does)."""

from django.db import migrations, models

TABLES = (
    "catalog_category",
    "catalog_product",
    "catalog_variant",
    "catalog_productimage",
    "catalog_embeddingspace",
    "catalog_imagevector",
    "catalog_productvector",
)

FUNCTION = """
CREATE OR REPLACE FUNCTION catalog_change_mark() RETURNS trigger AS $$
DECLARE
    tx text := txid_current()::text;
BEGIN
    IF current_setting('shop.catalog_change_tx', true) IS DISTINCT FROM tx THEN
        INSERT INTO catalog_change (id, version) VALUES (1, gen_random_uuid())
            ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version;
        PERFORM set_config('shop.catalog_change_tx', tx, true);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
"""

TRIGGERS = "".join(
    f"""
CREATE CONSTRAINT TRIGGER {table}_change AFTER INSERT OR UPDATE OR DELETE ON {table}
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION catalog_change_mark();
CREATE TRIGGER {table}_truncate_change AFTER TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION catalog_change_mark();
"""
    for table in TABLES
)

DROP = "".join(
    f"DROP TRIGGER IF EXISTS {table}_change ON {table}; DROP TRIGGER IF EXISTS {table}_truncate_change ON {table};"
    for table in TABLES
) + "DROP FUNCTION IF EXISTS catalog_change_mark();"


class Migration(migrations.Migration):
    dependencies = [("catalog", "0012_product_search_dirty")]

    operations = [
        migrations.CreateModel(
            name="CatalogChange",
            fields=[
                ("id", models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False)),
                ("version", models.UUIDField()),
            ],
            options={"db_table": "catalog_change"},
        ),
        migrations.RunSQL(
            "INSERT INTO catalog_change (id, version) VALUES (1, gen_random_uuid()) ON CONFLICT (id) DO NOTHING",
            migrations.RunSQL.noop,
        ),
        migrations.RunSQL(FUNCTION + TRIGGERS, DROP),
    ]

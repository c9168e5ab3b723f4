"""The shop's back office: the Django admin for the catalog, the staff pages (photo upload, image
status, bulk import, catalog health) and the catalog import command. It sits above ``catalog``
(which it writes through services), ``workers`` (which it asks to process what was written) and
``search`` (the health page's alternatives); nothing below imports it."""

"""Forms of the staff pages. Validation of the bytes themselves is in catalog.image_checks."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """A file field that accepts many files at once (``<input type=file multiple>``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput(attrs={"multiple": True, "accept": "image/*"}))
        kwargs.setdefault("allow_empty_file", True)  # an empty file gets its own reason from the upload checks
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile]:
        items = data if isinstance(data, list | tuple) else [data]
        items = [item for item in items if item]
        if not items:
            raise forms.ValidationError("choose or drop at least one photo")
        return [super(MultipleFileField, self).clean(item, initial) for item in items]


class ImageUploadForm(forms.Form):
    # a form field named "files": the form metaclass takes it off the class, so BaseForm.files (the
    # uploaded files) is untouched at run time; the stubs see that attribute overridden
    files = MultipleFileField(label="photos", help_text="JPEG, PNG, WebP, AVIF or GIF; as many as you like")  # type: ignore[assignment]
    product = forms.IntegerField(required=False, widget=forms.HiddenInput)


def _max_upload_bytes() -> int:
    return settings.SHOP_IMPORT_MAX_UPLOAD_BYTES


class ImportForm(forms.Form):
    csv_file = forms.FileField(
        label="catalog CSV",
        help_text="the import_catalog format: sku,title,description,category,colour,pattern,price,currency,"
        "stock,group,images",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )
    images_zip = forms.FileField(
        label="images ZIP",
        required=False,
        help_text="the photos the CSV's images column names, paths relative to the ZIP's root",
        widget=forms.ClearableFileInput(attrs={"accept": ".zip,application/zip"}),
    )

    def clean_csv_file(self) -> UploadedFile:
        upload: UploadedFile = self.cleaned_data["csv_file"]
        if upload.size and upload.size > 100 * 1024**2:
            raise forms.ValidationError("the CSV is larger than 100 MiB; split it into several imports")
        if upload.size == 0:
            raise forms.ValidationError("the CSV is empty")
        return upload

    def clean_images_zip(self) -> UploadedFile | None:
        upload: UploadedFile | None = self.cleaned_data.get("images_zip")
        if upload and upload.size and upload.size > _max_upload_bytes():
            raise forms.ValidationError(f"the ZIP is larger than {_max_upload_bytes() // 1024**2} MiB")
        return upload

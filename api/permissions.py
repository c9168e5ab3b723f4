"""Who may do what: anyone reads the public catalog; only active staff users write or see
processing details. Anonymous users never write."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import NotFound
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from catalog.models import Product, ProductImage


def is_staff(request: Request) -> bool:
    user = request.user
    return bool(user and user.is_authenticated and user.is_active and user.is_staff)


class PublicReadOnly(BasePermission):
    """Safe methods for everyone; an inactive product is visible to staff only (404 for others, so
    its existence does not leak)."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        return request.method in SAFE_METHODS or is_staff(request)

    def has_object_permission(self, request: Request, view: APIView, obj: Any) -> bool:
        if isinstance(obj, Product) and not obj.is_active and not is_staff(request):
            raise NotFound("No product with this SKU.")
        return request.method in SAFE_METHODS or is_staff(request)


class IsCatalogStaff(BasePermission):
    """Staff only, for the request and for each object it touches (a product, an image)."""

    message = "Only staff users may do this."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return is_staff(request)

    def has_object_permission(self, request: Request, view: APIView, obj: Any) -> bool:
        return isinstance(obj, Product | ProductImage) and is_staff(request)

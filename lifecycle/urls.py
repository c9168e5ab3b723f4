from __future__ import annotations

from django.urls import path

from lifecycle import views

app_name = "models"
urlpatterns = [
    path("", views.models_overview, name="overview"),
    path("train/", views.model_train, name="train"),
    path("activate/", views.model_activate, name="activate"),
]

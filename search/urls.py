from django.urls import path

from search import views

app_name = "search"
urlpatterns = [
    path("", views.home, name="home"),
    path("c/<path:path>/", views.category, name="category"),
    path("search", views.search, name="search"),
    path("search/photo", views.photo_upload, name="photo_upload"),
    path("search/photo/<str:token>", views.photo_results, name="photo"),
    path("p/<str:sku>/", views.product, name="product"),
    path("widget/alternatives/<str:sku>.json", views.widget_alternatives, name="widget_alternatives"),
    path("widget/alternatives.js", views.widget_script, name="widget_script"),
]

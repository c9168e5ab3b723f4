from django.apps import AppConfig


class EvaluationConfig(AppConfig):
    """Evaluation, evaluation-set building and the training commands: the shop's side of ``vision/``."""

    name = "evaluation"
    verbose_name = "Evaluation"

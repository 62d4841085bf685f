"""The analysis pipeline (:mod:`.steps`) and its typed result (:mod:`.analysis`)."""

from tracereplay.pipeline import analysis, steps
from tracereplay.pipeline.analysis import *  # noqa: F403
from tracereplay.pipeline.steps import *  # noqa: F403

__all__ = [*analysis.__all__, *steps.__all__]

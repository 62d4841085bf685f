"""The analysis pipeline (:mod:`.steps`), its typed result (:mod:`.analysis`) and the
notebook API (:mod:`.session`)."""

from tracereplay.pipeline import analysis, session, steps
from tracereplay.pipeline.analysis import *  # noqa: F403
from tracereplay.pipeline.session import *  # noqa: F403
from tracereplay.pipeline.steps import *  # noqa: F403

__all__ = [*analysis.__all__, *session.__all__, *steps.__all__]

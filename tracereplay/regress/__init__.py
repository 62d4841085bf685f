"""Regression use: expectation files (``check``), two recordings side by side (``compare``).

Everything reads the pipeline's typed :class:`~tracereplay.pipeline.Analysis`;
docs/REGRESSION.md describes the expectation file and the commands.

* :mod:`.expr`: one condition (``"65536 ± 2 %"``, ``"<= 0.8 × baseline"``);
* :mod:`.expect`: parse an expectation file, evaluate it against an analysis;
* :mod:`.golden`: write one from an analysis (every figure exact);
* :mod:`.check`: analyze a trace as the file says and evaluate it;
* :mod:`.compare`: match two analyses' VMs and compare their figures.
"""

from tracereplay.regress.check import CheckResult, analyze_for, run_check
from tracereplay.regress.compare import Comparison, compare, parse_mapping
from tracereplay.regress.expect import (
    Expectation,
    ExpectationFile,
    ExpectationFileError,
    Outcome,
    evaluate,
    load_expectations,
    parse_expectations,
)
from tracereplay.regress.expr import Condition, ConditionError, parse_condition
from tracereplay.regress.golden import expectations_text, write_expectations

__all__ = [
    "CheckResult",
    "Comparison",
    "Condition",
    "ConditionError",
    "Expectation",
    "ExpectationFile",
    "ExpectationFileError",
    "Outcome",
    "analyze_for",
    "compare",
    "evaluate",
    "expectations_text",
    "load_expectations",
    "parse_condition",
    "parse_expectations",
    "parse_mapping",
    "run_check",
    "write_expectations",
]

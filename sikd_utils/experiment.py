"""One task end to end — the historical entry point, now a thin façade over three modules:

* :mod:`sikd_utils.configuration` — settings, data splits and typed test-set keys;
* :mod:`sikd_utils.orchestration` — training the roles, testing every method, per-seed tables;
* :mod:`sikd_utils.stats` — statistics over seeds (CIs, paired differences, gate, verdicts).

The evidence run over all five tasks is :mod:`sikd_utils.reproduce`. Everything importable from here
before the split still is (these names are re-exported, not redefined: see their own modules).
"""

from __future__ import annotations

from .configuration import (COUNT_FIELDS, IMAGE_COUNTS, VOLUME_COUNTS, ExperimentConfig, Splits, TestSet,
                            benchmark_splits, real_splits, synthetic_splits)  # noqa: F401
from .orchestration import ExperimentResult, domain_gap, run_task, train_roles  # noqa: F401
from .orchestration import provenance as _provenance  # noqa: F401  (old private name)
from .stats import METHODS, compare_methods, method_summary, severity_table  # noqa: F401

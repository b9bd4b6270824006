"""Audits of existing models and datasets (``debiaskit audit ...``).

* :mod:`debiaskit.audit.predictions` — fairness metrics with bootstrap intervals for any model's saved
  predictions (CSV / parquet), written as ``report.md``, ``report.json`` and plots.
"""

from debiaskit.audit.predictions import AuditConfig, read_table, run_audit

__all__ = ["AuditConfig", "read_table", "run_audit"]

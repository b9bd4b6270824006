"""Tables, plots and reports: markdown run summaries and tables (:mod:`debiaskit.report.tables`), the bias
card (:mod:`debiaskit.report.cards`) and the self-contained HTML report (``debiaskit report``, docs/report.md)."""

from debiaskit.report.tables import format_run_summary, markdown_table

__all__ = ["format_run_summary", "markdown_table"]

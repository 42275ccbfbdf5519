"""Reports of a study: charts (matplotlib) in one self-contained HTML page. No Ray."""

from tuner.report._charts import CHARTS, importance_values
from tuner.report._data import StudyData, read
from tuner.report._html import write_report

__all__ = ["CHARTS", "StudyData", "importance_values", "read", "write_report"]

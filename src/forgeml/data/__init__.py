"""Datasets: versioned ingestion, profiles, validation suites and reports.

import forgeml as fm
flights = fm.Dataset.ingest("flights.csv", name="flights")
suite = fm.data.suggest_suite(flights)
result = fm.Dataset.get("flights").validate(suite)
"""

from forgeml.data import checks
from forgeml.data.dataset import Dataset
from forgeml.data.profiling import profile_data as profile
from forgeml.data.report import write_report
from forgeml.data.sources import SQL
from forgeml.data.suite import CheckResult, Suite, ValidationResult, suggest_suite

__all__ = [
    "SQL",
    "CheckResult",
    "Dataset",
    "Suite",
    "ValidationResult",
    "checks",
    "profile",
    "suggest_suite",
    "write_report",
]

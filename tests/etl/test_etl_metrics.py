"""The job's metrics: the EMF document built from a run summary (bookings_metrics). The line the
real script prints on stdout is checked in test_etl_glue_script.py (its failed-file run; its
successful run's metric names against what the stack's dashboard reads)."""

from __future__ import annotations

import json

import etl_helpers  # noqa: F401  (puts glue_scripts/ on sys.path)

import bookings_metrics as metrics

SUMMARY = {
    "execution_id": "exec-1", "source_file": "s3://b/raw/bookings/x.csv", "status": "SUCCEEDED",
    "error": None, "rows_read": 10, "rows_quarantined": 1, "rows_duplicate": 2, "rows_inserted": 4,
    "rows_updated": 2, "rows_unchanged": 1, "quarantine_uri": None, "unknown_columns": [],
    "timings": {"spark_session": 1.5, "stage": 2.25, "load": 0.75},
    "started_at": "2026-01-02T03:04:05.000Z", "finished_at": "2026-01-02T03:04:10.500Z",
    "duration_seconds": 5.5,
}


def _assert_valid_emf(document: dict) -> None:
    """The EMF specification's rules the document relies on (CloudWatch drops a malformed one)."""
    meta = document["_aws"]
    assert isinstance(meta["Timestamp"], int)
    [directive] = meta["CloudWatchMetrics"]
    assert directive["Namespace"] == metrics.NAMESPACE
    assert 1 <= len(directive["Metrics"]) <= 100
    for dimension_set in directive["Dimensions"]:
        assert len(dimension_set) <= 30
        for dimension in dimension_set:
            assert isinstance(document[dimension], str)
    for metric in directive["Metrics"]:
        value = document[metric["Name"]]
        assert isinstance(value, (int, float)) and not isinstance(value, bool)
        assert metric["Unit"] in ("Count", "Seconds")


def test_every_count_and_phase_of_the_summary_becomes_a_metric():
    document = metrics.emf_document(SUMMARY, "airline-ingest")
    _assert_valid_emf(document)
    assert document["JobName"] == "airline-ingest"
    assert document["_aws"]["Timestamp"] == 1767323050500  # finished_at
    assert {k: document[k] for k in ("RowsRead", "RowsInserted", "RowsUpdated", "RowsUnchanged",
                                     "RowsDuplicate", "RowsQuarantined")} == {
        "RowsRead": 10, "RowsInserted": 4, "RowsUpdated": 2, "RowsUnchanged": 1,
        "RowsDuplicate": 2, "RowsQuarantined": 1}
    assert (document["SparkSessionSeconds"], document["StageSeconds"], document["LoadSeconds"],
            document["RunSeconds"]) == (1.5, 2.25, 0.75, 5.5)
    assert (document["RunsSucceeded"], document["RunsFailed"]) == (1, 0)
    # Searchable in Logs Insights, but not metrics.
    declared = {m["Name"] for m in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert "execution_id" not in declared and document["execution_id"] == "exec-1"


def test_a_field_the_summary_lacks_is_left_out_and_a_new_one_is_read():
    older = {k: v for k, v in SUMMARY.items() if k != "timings"}
    document = metrics.emf_document(older, "j")
    _assert_valid_emf(document)
    assert "RowsStale" not in document and "StageSeconds" not in document
    newer = metrics.emf_document({**SUMMARY, "rows_stale": 3, "rows_staged": 7}, "j")
    _assert_valid_emf(newer)
    assert newer["RowsStale"] == 3
    assert set(metrics.ALL_METRICS) >= {m["Name"] for m in newer["_aws"]["CloudWatchMetrics"][0]["Metrics"]}


def test_a_failed_run_counts_as_failed_and_non_numbers_are_never_declared():
    document = metrics.emf_document({**SUMMARY, "status": "FAILED", "rows_inserted": None,
                                     "rows_updated": "2"}, "j")
    _assert_valid_emf(document)
    assert (document["RunsSucceeded"], document["RunsFailed"]) == (0, 1)
    assert "RowsInserted" not in document and "RowsUpdated" not in document


def test_the_line_is_one_json_object_on_one_line():
    line = metrics.emf_line(SUMMARY, "j")
    assert "\n" not in line and json.loads(line) == metrics.emf_document(SUMMARY, "j")


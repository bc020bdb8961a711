"""Shared by the ETL tests: paths, a valid row, and CSV text builders.

Importing this module puts glue_scripts/ on sys.path: the Glue modules are imported by their
flat names, as on Glue (where the --extra-py-files bundle is on sys.path).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
GLUE_SCRIPTS = REPO_ROOT / "glue_scripts"
if str(GLUE_SCRIPTS) not in sys.path:
    sys.path.insert(0, str(GLUE_SCRIPTS))

import bookings_contract as contract  # noqa: E402

HEADER = ",".join(contract.CONTRACT_COLUMNS)
# A valid row; tests change one value at a time. JFK departure 3 days and 2 hours after booking.
GOOD_ROW = {
    "booking_id": "B1",
    "booking_time": "2025-03-01T10:00:00Z",
    "updated_at": "2025-03-01T10:00:00Z",
    "passenger_id": "P1",
    "carrier_code": "AA",
    "flight_number": "100",
    "origin": "JFK",
    "destination": "LHR",
    "departure_time": "2025-03-04T07:00:00",
    "cabin_class": "economy",
    "fare_amount": "450.10",
    "currency": "USD",
    "num_passengers": "2",
    "booking_status": "confirmed",
    "sales_channel": "web",
}


def csv_line(values: list[str]) -> str:
    """One CSV record, quoting what needs it (RFC 4180)."""
    def quote(value: str) -> str:
        if any(char in value for char in ',"\r\n'):
            return '"' + value.replace('"', '""') + '"'
        return value
    return ",".join(quote(value) for value in values)


def rows_csv(rows: list[dict[str, str]], columns: tuple[str, ...] = contract.CONTRACT_COLUMNS,
             newline: str = "\n") -> str:
    lines = [",".join(columns)] + [csv_line([row.get(c, "") for c in columns]) for row in rows]
    return newline.join(lines) + newline

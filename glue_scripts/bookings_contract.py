"""The bookings input contract (docs/data-contract.md) and the warehouse tables' shapes.

Plain Python, no Spark: the column list, the allowed values, how a header maps onto the
contract, and the airport reference data. The Glue job ships this file with --extra-py-files;
modules in glue_scripts/ import each other by their flat names, as Glue puts them on sys.path.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass

LOG = logging.getLogger(__name__)

# Contract columns, in the order of airline.bookings.
CONTRACT_COLUMNS = (
    "booking_id", "booking_time", "updated_at", "passenger_id", "carrier_code", "flight_number",
    "origin", "destination", "departure_time", "cabin_class", "fare_amount", "currency",
    "num_passengers", "booking_status", "sales_channel",
)
OPTIONAL_COLUMNS = frozenset({"updated_at", "sales_channel"})
REQUIRED_COLUMNS = tuple(c for c in CONTRACT_COLUMNS if c not in OPTIONAL_COLUMNS)

CABIN_CLASSES = ("economy", "premium_economy", "business", "first")
BOOKING_STATUSES = ("confirmed", "cancelled", "checked_in")
SALES_CHANNELS = ("web", "mobile", "agency", "call_center")
MAX_ID_BYTES = 64  # Redshift VARCHAR lengths count bytes, not characters
FLIGHT_NUMBER_RANGE = (1, 9999)
NUM_PASSENGERS_RANGE = (1, 9)
DEFAULT_MAX_REJECT_RATIO = 0.1

# Warehouse tables as Spark SQL types, in column order (COPY from Parquet maps by position).
# Must match the tables of sql/migrations/ and the stage_run table of sql/load_bookings.sql.
BOOKINGS_TABLE = (
    ("booking_id", "string"), ("booking_time", "timestamp"), ("updated_at", "timestamp"),
    ("passenger_id", "string"), ("carrier_code", "string"), ("flight_number", "short"),
    ("origin", "string"), ("destination", "string"), ("departure_time", "timestamp"),
    ("cabin_class", "string"), ("fare_amount", "decimal(12,2)"), ("currency", "string"),
    ("num_passengers", "short"), ("booking_status", "string"), ("sales_channel", "string"),
    ("origin_city", "string"), ("origin_country", "string"), ("destination_city", "string"),
    ("destination_country", "string"), ("distance_km", "double"), ("is_international", "boolean"),
    ("departure_time_utc", "timestamp"), ("lead_time_days", "int"), ("source_file", "string"),
    ("execution_id", "string"), ("ingested_at", "timestamp"),
)
AIRPORTS_TABLE = (
    ("iata_code", "string"), ("icao_code", "string"), ("name", "string"), ("city", "string"),
    ("subdivision", "string"), ("country", "string"), ("latitude", "double"),
    ("longitude", "double"), ("time_zone", "string"),
)
RUN_TABLE = (
    ("execution_id", "string"), ("source_file", "string"), ("rows_read", "bigint"),
    ("rows_quarantined", "bigint"), ("rows_duplicate", "bigint"), ("rows_staged", "bigint"),
    ("quarantine_uri", "string"),
    ("started_at", "timestamp"),
)
# VARCHAR sizes (bytes) of the airports table: reference text longer than this is cut.
AIRPORT_TEXT_LIMITS = {"name": 256, "city": 128, "subdivision": 128}


class BookingFileError(Exception):
    """The whole file is rejected; the message is "<source uri>: <reason>"."""


class FileRejected(ValueError):
    """A file-level contract failure; the message is the reason, without the file name."""


def normalize_column_name(name: str) -> str:
    """Header names match case-insensitively, ignoring surrounding spaces and a UTF-8 BOM."""
    return name.lstrip("\ufeff").strip().lower()


@dataclass(frozen=True)
class HeaderMapping:
    """Where each contract column sits in the file's header."""

    header: tuple[str, ...]           # the file's names as written (BOM and spaces removed)
    positions: dict[str, int]         # contract column -> 0-based position in the file
    unknown_columns: tuple[str, ...]  # names in the file that the contract does not know

    @property
    def width(self) -> int:
        return len(self.header)


def map_header(header: list[str]) -> HeaderMapping:
    """Match a header row to the contract; raise FileRejected naming what is wrong."""
    if not header or all(not name.strip() for name in header):
        raise FileRejected("no header row")
    # An unnamed column (e.g. from a trailing comma) is an unknown column like any other.
    names = tuple(name.lstrip("\ufeff").strip() or f"_unnamed_column_{index + 1}"
                  for index, name in enumerate(header))
    positions: dict[str, int] = {}
    seen: dict[str, str] = {}
    duplicates: list[str] = []
    unknown: list[str] = []
    for index, name in enumerate(names):
        key = normalize_column_name(name)
        if key in seen:
            duplicates.append(f"{seen[key]!r} and {name!r}")
            continue
        seen[key] = name
        if key in CONTRACT_COLUMNS:
            positions[key] = index
        else:
            unknown.append(name)
    if duplicates:
        raise FileRejected("duplicate column names: " + "; ".join(duplicates))
    missing = [column for column in REQUIRED_COLUMNS if column not in positions]
    if missing:
        raise FileRejected("missing required column(s): " + ", ".join(missing))
    return HeaderMapping(header=names, positions=positions, unknown_columns=tuple(unknown))


@dataclass(frozen=True)
class Airport:
    iata_code: str
    icao_code: str | None
    name: str
    city: str | None
    subdivision: str | None
    country: str
    latitude: float
    longitude: float
    time_zone: str


def _clip_utf8(text: str | None, limit: int) -> str | None:
    if not text:
        return None
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode("utf-8", errors="ignore")


def load_airports(jvm_zone_ids: Collection[str] | None = None) -> list[Airport]:
    """Airports with an IATA code from the airportsdata package (the maintained reference).

    Entries without a country, a time zone or coordinates cannot enrich a booking and are left
    out, so an unknown code and an unusable one are reported the same way; so are airports whose
    time zone does not resolve (``resolvable_airports``: in Python, and in the JVM when the job
    passes ``jvm_time_zone_ids(spark)``).
    """
    import airportsdata  # imported here: only the driver needs it

    airports = []
    for code, record in sorted(airportsdata.load("IATA").items()):
        country, zone = record.get("country") or "", record.get("tz") or ""
        lat, lon = record.get("lat"), record.get("lon")
        if len(code) != 3 or len(country) != 2 or not zone or lat is None or lon is None:
            continue
        airports.append(Airport(
            iata_code=code,
            icao_code=(record.get("icao") or None) if len(record.get("icao") or "") <= 4 else None,
            name=_clip_utf8(record.get("name"), AIRPORT_TEXT_LIMITS["name"]) or code,
            city=_clip_utf8(record.get("city"), AIRPORT_TEXT_LIMITS["city"]),
            subdivision=_clip_utf8(record.get("subd"), AIRPORT_TEXT_LIMITS["subdivision"]),
            country=country,
            latitude=float(lat),
            longitude=float(lon),
            time_zone=zone,
        ))
    return resolvable_airports(airports, jvm_zone_ids)


def resolvable_airports(airports: Iterable[Airport], jvm_zone_ids: Collection[str] | None) -> list[Airport]:
    """The airports whose IANA time zone resolves in Python (zoneinfo) and in the JVM (Spark's
    to_utc_timestamp resolves it with java.time.ZoneId; ``None``: not checked). A zone one of
    them lacks (a tz database older than airportsdata's, a typo upstream) would fail every file
    that reaches Spark's conversion: the airport is dropped instead, with a warning, and its
    bookings are quarantined as `unknown IATA airport code`."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    def resolves_in_python(zone: str) -> bool:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            return False
        return True

    usable, dropped = [], {}
    verdicts: dict[str, str | None] = {}  # zone -> where it does not resolve (None: resolves)
    for airport in airports:
        zone = airport.time_zone
        if zone not in verdicts:
            missing = [name for name, ok in (("Python", resolves_in_python(zone)),
                                             ("the JVM", jvm_zone_ids is None or zone in jvm_zone_ids)) if not ok]
            verdicts[zone] = " and ".join(missing) or None
        if verdicts[zone] is None:
            usable.append(airport)
        else:
            dropped.setdefault(zone, []).append(airport.iata_code)
    for zone, codes in sorted(dropped.items()):
        LOG.warning("airport reference: time zone %r does not resolve in %s; dropped %s (their "
                    "bookings are quarantined as unknown IATA airport codes)", zone, verdicts[zone],
                    ", ".join(codes))
    return usable


def jvm_time_zone_ids(spark) -> frozenset[str]:
    """The region zone ids java.time knows in this Spark driver's JVM (one call over py4j)."""
    jvm = spark.sparkContext._jvm
    return frozenset(str(jvm.java.lang.String.join("\n", jvm.java.time.ZoneId.getAvailableZoneIds())).split("\n"))

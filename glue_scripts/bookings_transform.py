"""Pure DataFrame -> DataFrame steps of the bookings ETL: validate, quarantine, dedupe, enrich.

Built-in Spark functions only (no Python UDFs), so every step runs in the JVM with code
generation. The raw DataFrame has one string column per header position (``_c0``, ``_c1``...)
plus the CSV reader's corrupt-record column; :func:`raw_schema` builds that schema.
"""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from bookings_contract import (
    AIRPORTS_TABLE,
    BOOKING_STATUSES,
    BOOKINGS_TABLE,
    CABIN_CLASSES,
    CONTRACT_COLUMNS,
    FLIGHT_NUMBER_RANGE,
    MAX_ID_BYTES,
    NUM_PASSENGERS_RANGE,
    SALES_CHANNELS,
    Airport,
    HeaderMapping,
)

CORRUPT_RECORD = "_corrupt_record"
RECORD_NUMBER = "record_number"
REASONS = "reasons"
QUARANTINE_VALUES = "_quarantine_values"
DUPLICATE_RANK = "_duplicate_rank"  # rank_duplicates: 1 = the row kept for its booking_id
EARTH_RADIUS_KM = 6371.0

# ISO 8601 date-time: date, 'T' (or a space), hh:mm[:ss[.fraction]], optional offset.
_LOCAL_TIMESTAMP = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?"
_OFFSET = r"(Z|[+-]\d{2}(:?\d{2})?)"
TIMESTAMP_PATTERN = f"^{_LOCAL_TIMESTAMP}{_OFFSET}?$"
LOCAL_TIMESTAMP_PATTERN = f"^{_LOCAL_TIMESTAMP}$"
INTEGER_PATTERN = r"^[0-9]+$"
DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
DECIMAL_12_2_PATTERN = r"^-?[0-9]{1,10}(\.[0-9]{1,2})?$"
CARRIER_PATTERN = r"^[A-Z0-9]{2}$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"
UNSAFE_TEXT_PATTERN = r"[\p{Cc}\x{FFFD}]"  # control characters, or U+FFFD from invalid UTF-8


def raw_schema(mapping: HeaderMapping) -> T.StructType:
    """All-string schema by header position, plus the corrupt-record column."""
    fields = [T.StructField(f"_c{index}", T.StringType()) for index in range(mapping.width)]
    return T.StructType(fields + [T.StructField(CORRUPT_RECORD, T.StringType())])


_SPARK_TYPES = {
    "string": T.StringType(), "timestamp": T.TimestampType(), "short": T.ShortType(),
    "int": T.IntegerType(), "bigint": T.LongType(), "double": T.DoubleType(),
    "boolean": T.BooleanType(), "decimal(12,2)": T.DecimalType(12, 2),
}


def table_schema(table: tuple[tuple[str, str], ...]) -> T.StructType:
    """A warehouse table's columns (bookings_contract) as a Spark schema."""
    return T.StructType([T.StructField(name, _SPARK_TYPES[kind]) for name, kind in table])


def airports_frame(spark: SparkSession, airports: list[Airport]) -> DataFrame:
    """The airport reference as a DataFrame in airline.airports column order."""
    rows = [tuple(getattr(airport, name) for name, _ in AIRPORTS_TABLE) for airport in airports]
    return spark.createDataFrame(rows, table_schema(AIRPORTS_TABLE))


def _text(raw: DataFrame, mapping: HeaderMapping, column: str) -> Column:
    """A contract column's value: trimmed, empty as null (null also when the column is absent)."""
    if column not in mapping.positions:
        return F.lit(None).cast("string")
    value = F.trim(F.col(f"_c{mapping.positions[column]}"))
    return F.when(value != F.lit(""), value)


def _try_cast(column: str, type_name: str) -> Column:
    # try_cast gives null instead of failing whatever spark.sql.ansi.enabled says.
    return F.expr(f"try_cast(`{column}` AS {type_name})")


def _one_of(values: tuple[str, ...]) -> str:
    return "not one of " + ", ".join(values)


def _reason(column: str, *checks: tuple[Column, str]) -> Column:
    """At most one reason per column: the first failing check, as "<column>: <rule>"."""
    expression = None
    for failed, rule in checks:
        text = F.lit(f"{column}: {rule}")
        expression = F.when(failed, text) if expression is None else expression.when(failed, text)
    return expression


def validate(raw: DataFrame, mapping: HeaderMapping, airports: DataFrame,
             partitions: int | None = None) -> DataFrame:
    """Parse and check every row against the contract.

    Returns ``record_number`` (1-based data record: the reader's column, see
    bookings_io.read_bookings_csv; else the raw DataFrame must be one file read in a single
    partition, as multiLine CSV reading gives), the typed contract columns,
    ``departure_time_utc`` and ``reasons`` (array of "<column>: <rule>", empty for a good row).
    ``_quarantine_values`` keeps the original text of a rejected row by header name (null for
    good rows). The result carries no more columns than its two uses (staging, quarantine) need.

    ``partitions``: hash the rows on their trimmed booking_id into that many partitions before
    the checks: validation uses every core even when the reader had one partition, and the
    result is already clustered for :func:`deduplicate` (its window needs no second shuffle).
    """
    if RECORD_NUMBER not in raw.columns:
        raw = raw.withColumn(RECORD_NUMBER, F.monotonically_increasing_id() + 1)
    text = raw.select(
        RECORD_NUMBER,
        CORRUPT_RECORD,
        *[F.col(f"_c{index}") for index in range(mapping.width)],
        *[_text(raw, mapping, column).alias(f"t_{column}") for column in CONTRACT_COLUMNS],
    )
    if partitions and partitions > 1:
        text = text.repartition(partitions, "t_booking_id")
    text = text.withColumns({
        "t_carrier_code": F.upper(F.col("t_carrier_code")),
        "t_origin": F.upper(F.col("t_origin")),
        "t_destination": F.upper(F.col("t_destination")),
        "t_currency": F.upper(F.col("t_currency")),
        "t_cabin_class": F.lower(F.col("t_cabin_class")),
        "t_booking_status": F.lower(F.col("t_booking_status")),
        "t_sales_channel": F.lower(F.col("t_sales_channel")),
    })

    parsed = text.withColumns({
        "p_booking_time": F.when(F.col("t_booking_time").rlike(TIMESTAMP_PATTERN),
                                 _try_cast("t_booking_time", "TIMESTAMP")),
        "p_updated_at": F.when(F.col("t_updated_at").rlike(TIMESTAMP_PATTERN),
                               _try_cast("t_updated_at", "TIMESTAMP")),
        "p_departure_time": F.when(F.col("t_departure_time").rlike(LOCAL_TIMESTAMP_PATTERN),
                                   _try_cast("t_departure_time", "TIMESTAMP")),
        "p_flight_number": F.when(F.col("t_flight_number").rlike(INTEGER_PATTERN),
                                  _try_cast("t_flight_number", "INT")),
        "p_num_passengers": F.when(F.col("t_num_passengers").rlike(INTEGER_PATTERN),
                                   _try_cast("t_num_passengers", "INT")),
        "p_fare_amount": F.when(F.col("t_fare_amount").rlike(DECIMAL_PATTERN),
                                _try_cast("t_fare_amount", "DECIMAL(38,10)")),
    })

    origin = F.broadcast(airports.select(F.col("iata_code").alias("o_iata"),
                                         F.col("time_zone").alias("o_tz")))
    destination = F.broadcast(airports.select(F.col("iata_code").alias("d_iata")))
    joined = (parsed
              .join(origin, F.col("t_origin") == F.col("o_iata"), "left")
              .join(destination, F.col("t_destination") == F.col("d_iata"), "left")
              .withColumn("p_departure_time_utc",
                          F.to_utc_timestamp(F.col("p_departure_time"), F.col("o_tz"))))

    # A good row pays for one pass over the checks (coalesce stops at the first failure); only
    # a rejected row builds its list of reasons.
    # array_except drops the nulls (passed checks) and stays in generated code, unlike
    # array_compact, a higher-order function that makes Spark interpret every check.
    reasons = _row_reasons(mapping)
    no_reason = F.array(F.lit(None).cast("string"))
    checked = (joined
               .withColumn("_rejected", F.coalesce(*reasons).isNotNull())
               .withColumn(REASONS, F.when(F.col("_rejected"),
                                           F.array_except(F.array(*reasons), no_reason))
                           .otherwise(F.array().cast("array<string>"))))
    rejected = F.col("_rejected")
    values = F.struct(*[F.col(f"_c{index}").alias(name)
                        for index, name in enumerate(mapping.header)])
    return checked.select(
        RECORD_NUMBER,
        REASONS,
        F.when(rejected, values).alias(QUARANTINE_VALUES),
        F.when(rejected, F.col(CORRUPT_RECORD)).alias(CORRUPT_RECORD),
        F.col("t_booking_id").alias("booking_id"),
        F.col("p_booking_time").alias("booking_time"),
        F.coalesce(F.col("p_updated_at"), F.col("p_booking_time")).alias("updated_at"),
        F.col("t_passenger_id").alias("passenger_id"),
        F.col("t_carrier_code").alias("carrier_code"),
        F.col("p_flight_number").alias("flight_number"),
        F.col("t_origin").alias("origin"),
        F.col("t_destination").alias("destination"),
        F.col("p_departure_time").alias("departure_time"),
        F.col("t_cabin_class").alias("cabin_class"),
        _try_cast("p_fare_amount", "DECIMAL(12,2)").alias("fare_amount"),
        F.col("t_currency").alias("currency"),
        F.col("p_num_passengers").alias("num_passengers"),
        F.col("t_booking_status").alias("booking_status"),
        F.col("t_sales_channel").alias("sales_channel"),
        F.col("p_departure_time_utc").alias("departure_time_utc"),
    )


def _row_reasons(mapping: HeaderMapping) -> list[Column]:
    def t(column: str) -> Column:
        return F.col(f"t_{column}")

    def p(column: str) -> Column:
        return F.col(f"p_{column}")

    def required(column: str) -> tuple[Column, str]:
        return t(column).isNull(), "required"

    def identifier(column: str) -> Column:
        return _reason(
            column, required(column),
            (F.octet_length(t(column)) > MAX_ID_BYTES, f"longer than {MAX_ID_BYTES} bytes"),
            (t(column).rlike(UNSAFE_TEXT_PATTERN), "contains control characters or invalid UTF-8"),
        )

    def timestamp(column: str, *, is_required: bool) -> Column:
        checks = [required(column)] if is_required else []
        checks.append((t(column).isNotNull() & p(column).isNull(), "not an ISO 8601 timestamp"))
        return _reason(column, *checks)

    def integer(column: str, low: int, high: int) -> Column:
        return _reason(
            column, required(column),
            (~t(column).rlike(INTEGER_PATTERN), "not an integer"),
            (p(column).isNull() | (p(column) < low) | (p(column) > high),
             f"out of range {low}-{high}"),
        )

    def enum(column: str, allowed: tuple[str, ...], *, is_required: bool = True) -> Column:
        checks = [required(column)] if is_required else []
        checks.append((t(column).isNotNull() & ~t(column).isin(*allowed), _one_of(allowed)))
        return _reason(column, *checks)

    return [
        F.when(F.col(CORRUPT_RECORD).isNotNull(),
               F.lit(f"row: malformed CSV record (expected {mapping.width} fields)")),
        identifier("booking_id"),
        timestamp("booking_time", is_required=True),
        timestamp("updated_at", is_required=False),
        identifier("passenger_id"),
        _reason("carrier_code", required("carrier_code"),
                (~t("carrier_code").rlike(CARRIER_PATTERN), "not 2 characters [A-Z0-9]")),
        integer("flight_number", *FLIGHT_NUMBER_RANGE),
        _reason("origin", required("origin"),
                (F.col("o_iata").isNull(), "unknown IATA airport code")),
        _reason("destination", required("destination"),
                (F.col("d_iata").isNull(), "unknown IATA airport code"),
                (t("destination") == t("origin"), "same as origin")),
        _reason("departure_time", required("departure_time"),
                (p("departure_time").isNull() & t("departure_time").rlike(TIMESTAMP_PATTERN),
                 "has a UTC offset (must be local time at the origin)"),
                (p("departure_time").isNull(), "not an ISO 8601 timestamp"),
                (p("departure_time_utc") < p("booking_time"), "before booking_time")),
        enum("cabin_class", CABIN_CLASSES),
        _reason("fare_amount", required("fare_amount"),
                (p("fare_amount").isNull(), "not a decimal number"),
                (p("fare_amount") < 0, "negative"),
                (~t("fare_amount").rlike(DECIMAL_12_2_PATTERN),
                 "does not fit decimal(12,2) (at most 10 digits and 2 decimals)")),
        _reason("currency", required("currency"),
                (~t("currency").rlike(CURRENCY_PATTERN), "not 3 letters [A-Z]")),
        integer("num_passengers", *NUM_PASSENGERS_RANGE),
        enum("booking_status", BOOKING_STATUSES),
        enum("sales_channel", SALES_CHANNELS, is_required=False),
    ]


def is_rejected(validated: DataFrame) -> Column:
    return F.size(validated[REASONS]) > 0


def quarantine_records(validated: DataFrame, source_file: str) -> DataFrame:
    """Rejected rows as the quarantine objects: source_file, record_number, reasons, values,
    and raw (the record's text when it could not be split into the header's columns)."""
    return validated.where(is_rejected(validated)).select(
        F.lit(source_file).alias("source_file"),
        RECORD_NUMBER,
        REASONS,
        F.col(QUARANTINE_VALUES).alias("values"),
        F.col(CORRUPT_RECORD).alias("raw"),
    )


def accepted_rows(validated: DataFrame) -> DataFrame:
    return validated.where(~is_rejected(validated)).drop(QUARANTINE_VALUES, CORRUPT_RECORD, REASONS)


def deduplicate(accepted: DataFrame) -> DataFrame:
    """One row per booking_id: the latest updated_at, and on a tie the later record."""
    return keep_first_ranked(rank_duplicates(accepted))


def rank_duplicates(accepted: DataFrame) -> DataFrame:
    """Each row's DUPLICATE_RANK among the rows of its booking_id: 1 is the row kept (the latest
    updated_at, on a tie the later record), above 1 a duplicate. Apart from ``deduplicate`` so
    that the job can count the duplicates it drops directly (is_duplicate)."""
    latest_first = Window.partitionBy("booking_id").orderBy(
        F.col("updated_at").desc(), F.col(RECORD_NUMBER).desc())
    return accepted.withColumn(DUPLICATE_RANK, F.row_number().over(latest_first))


def is_duplicate(ranked: DataFrame) -> Column:
    return ranked[DUPLICATE_RANK] > 1


def keep_first_ranked(ranked: DataFrame) -> DataFrame:
    return ranked.where(~is_duplicate(ranked)).drop(DUPLICATE_RANK)


def _great_circle_km(lat1: Column, lon1: Column, lat2: Column, lon2: Column) -> Column:
    """Haversine distance on a sphere of the mean Earth radius."""
    phi1, phi2 = F.radians(lat1), F.radians(lat2)
    half_dphi = (phi2 - phi1) / 2
    half_dlambda = (F.radians(lon2) - F.radians(lon1)) / 2
    h = F.pow(F.sin(half_dphi), 2) + F.cos(phi1) * F.cos(phi2) * F.pow(F.sin(half_dlambda), 2)
    return F.lit(2 * EARTH_RADIUS_KM) * F.asin(F.least(F.sqrt(h), F.lit(1.0)))


def enrich(accepted: DataFrame, airports: DataFrame, source_file: str, execution_id: str,
           ingested_at: datetime) -> DataFrame:
    """Add the airports' cities and countries, distance, international flag, lead time and
    lineage; return the rows in airline.bookings column order and types (COPY from Parquet
    maps columns by position). ``ingested_at`` must be timezone-aware."""
    if ingested_at.tzinfo is None:
        raise ValueError("ingested_at must be timezone-aware")
    micros_per_day = 86_400 * 1_000_000
    origin = F.broadcast(airports.select(
        F.col("iata_code").alias("o_iata"), F.col("city").alias("origin_city"),
        F.col("country").alias("origin_country"), F.col("latitude").alias("o_lat"),
        F.col("longitude").alias("o_lon")))
    destination = F.broadcast(airports.select(
        F.col("iata_code").alias("d_iata"), F.col("city").alias("destination_city"),
        F.col("country").alias("destination_country"), F.col("latitude").alias("d_lat"),
        F.col("longitude").alias("d_lon")))
    located = (accepted
               .join(origin, F.col("origin") == F.col("o_iata"), "inner")
               .join(destination, F.col("destination") == F.col("d_iata"), "inner"))
    enriched = located.withColumns({
        "distance_km": F.round(_great_circle_km(F.col("o_lat"), F.col("o_lon"),
                                                F.col("d_lat"), F.col("d_lon")), 1),
        "is_international": F.col("origin_country") != F.col("destination_country"),
        "lead_time_days": F.floor((F.unix_micros("departure_time_utc")
                                   - F.unix_micros("booking_time")) / F.lit(micros_per_day)),
        "source_file": F.lit(source_file),
        "execution_id": F.lit(execution_id),
        "ingested_at": F.lit(ingested_at).cast("timestamp"),
    })
    return to_table_columns(enriched, BOOKINGS_TABLE)


def to_table_columns(frame: DataFrame, table: tuple[tuple[str, str], ...]) -> DataFrame:
    """Select a table's columns in order, cast to the Spark types that match its SQL types."""
    return frame.select(*[F.col(name).cast(kind).alias(name) for name, kind in table])

-- Migration 0001: the warehouse schema as the 2026-12-01 release created it (its
-- sql/001_schema.sql, statements unchanged). A warehouse that release deployed has exactly these
-- tables and is baselined at 0001 by the schema custom resource (docs/upgrading-warehouse.md).
-- Never edit an applied migration: its checksum is recorded in airline.schema_migrations and a
-- changed one fails the deploy. Change the schema with a new migration instead.

CREATE SCHEMA IF NOT EXISTS airline;

-- SOURCE_URI_BYTES: a source_file column holds s3://<bucket>/<key>: at most 5 + 63 (bucket name)
-- + 1 + 1,024 (an S3 key is up to 1,024 bytes of UTF-8) = 1,093 bytes, and Redshift counts
-- VARCHAR lengths in bytes. COPY from Parquet cannot truncate (no TRUNCATECOLUMNS), so a narrower
-- column would fail the whole load of a file with a long key: VARCHAR(1100) holds any of them.

-- One row per booking_id (the natural key). Timestamps are UTC except departure_time,
-- which keeps the local wall-clock time at the origin airport as the contract defines it.
CREATE TABLE IF NOT EXISTS airline.bookings (
    booking_id          VARCHAR(64)      NOT NULL,
    booking_time        TIMESTAMP        NOT NULL,
    updated_at          TIMESTAMP        NOT NULL,
    passenger_id        VARCHAR(64)      NOT NULL,
    carrier_code        VARCHAR(2)       NOT NULL,
    flight_number       SMALLINT         NOT NULL,
    origin              VARCHAR(3)       NOT NULL,
    destination         VARCHAR(3)       NOT NULL,
    departure_time      TIMESTAMP        NOT NULL,
    cabin_class         VARCHAR(16)      NOT NULL,
    fare_amount         DECIMAL(12, 2)   NOT NULL,
    currency            VARCHAR(3)       NOT NULL,
    num_passengers      SMALLINT         NOT NULL,
    booking_status      VARCHAR(16)      NOT NULL,
    sales_channel       VARCHAR(16),
    origin_city         VARCHAR(128),
    origin_country      VARCHAR(2),
    destination_city    VARCHAR(128),
    destination_country VARCHAR(2),
    distance_km         DOUBLE PRECISION NOT NULL,
    is_international    BOOLEAN          NOT NULL,
    departure_time_utc  TIMESTAMP        NOT NULL,
    lead_time_days      INTEGER          NOT NULL,
    source_file         VARCHAR(1100)    NOT NULL,  -- see SOURCE_URI_BYTES above
    execution_id        VARCHAR(128)     NOT NULL,
    ingested_at         TIMESTAMP        NOT NULL,
    PRIMARY KEY (booking_id)
)
DISTSTYLE KEY
DISTKEY (booking_id)
SORTKEY (departure_time_utc);

-- Airport dimension, refreshed from the airportsdata package by every load.
CREATE TABLE IF NOT EXISTS airline.airports (
    iata_code   VARCHAR(3)       NOT NULL,
    icao_code   VARCHAR(4),
    name        VARCHAR(256)     NOT NULL,
    city        VARCHAR(128),
    subdivision VARCHAR(128),
    country     VARCHAR(2)       NOT NULL,
    latitude    DOUBLE PRECISION NOT NULL,
    longitude   DOUBLE PRECISION NOT NULL,
    time_zone   VARCHAR(64)      NOT NULL,
    PRIMARY KEY (iata_code)
)
DISTSTYLE ALL
SORTKEY (iata_code);

-- One row per successful load (keyed by the Step Functions execution that ran it).
CREATE TABLE IF NOT EXISTS airline.ingestion_runs (
    execution_id     VARCHAR(128)  NOT NULL,
    source_file      VARCHAR(1100) NOT NULL,  -- see SOURCE_URI_BYTES above
    status           VARCHAR(16)   NOT NULL,
    rows_read        BIGINT        NOT NULL,
    rows_quarantined BIGINT        NOT NULL,
    rows_duplicate   BIGINT        NOT NULL,
    rows_inserted    BIGINT        NOT NULL,
    rows_updated     BIGINT        NOT NULL,
    rows_unchanged   BIGINT        NOT NULL,
    quarantine_uri   VARCHAR(1024),
    started_at       TIMESTAMP     NOT NULL,
    loaded_at        TIMESTAMP     NOT NULL,
    PRIMARY KEY (execution_id)
)
DISTSTYLE ALL
SORTKEY (started_at);

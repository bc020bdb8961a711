-- The load of one run, executed by the Glue job as ONE Redshift Data API batch (one transaction).
-- Placeholders, filled by the job with values it builds itself (never from file contents or the
-- object key): {staging_uri} = <data root>/staging/<execution id>/  and  {iam_role} = the COPY role.
-- Statements are separated by a line holding only ";". Keep to Redshift's SQL: the local runtime
-- runs the same text on PostgreSQL, which accepts more (see tests that hold this file to Redshift).

-- Serialize loads: Redshift does not enforce primary keys, so two concurrent MERGEs of the same
-- new booking_id would both insert it.
LOCK airline.bookings, airline.airports, airline.ingestion_runs
;
CREATE TEMP TABLE stage_bookings (LIKE airline.bookings)
;
COPY stage_bookings FROM '{staging_uri}bookings/' IAM_ROLE '{iam_role}' FORMAT AS PARQUET
;
CREATE TEMP TABLE stage_airports (LIKE airline.airports)
;
COPY stage_airports FROM '{staging_uri}airports/' IAM_ROLE '{iam_role}' FORMAT AS PARQUET
;
CREATE TEMP TABLE stage_run (
    execution_id     VARCHAR(128),
    source_file      VARCHAR(1100),  -- s3:// + 63-byte bucket + / + 1,024-byte key (001_schema.sql)
    rows_read        BIGINT,
    rows_quarantined BIGINT,
    rows_duplicate   BIGINT,
    quarantine_uri   VARCHAR(1024),
    started_at       TIMESTAMP
)
;
COPY stage_run FROM '{staging_uri}run/' IAM_ROLE '{iam_role}' FORMAT AS PARQUET
;
DELETE FROM airline.airports
;
INSERT INTO airline.airports SELECT * FROM stage_airports
;
-- A retried job of the same execution replaces its audit row.
DELETE FROM airline.ingestion_runs USING stage_run
WHERE airline.ingestion_runs.execution_id = stage_run.execution_id
;
-- Count what the MERGE below will do before it does it: new keys are inserted, strictly newer
-- rows update, anything as old as or older than the warehouse row is left unchanged.
INSERT INTO airline.ingestion_runs (
    execution_id, source_file, status, rows_read, rows_quarantined, rows_duplicate,
    rows_inserted, rows_updated, rows_unchanged, quarantine_uri, started_at, loaded_at
)
SELECT r.execution_id, r.source_file, 'SUCCEEDED', r.rows_read, r.rows_quarantined, r.rows_duplicate,
       c.rows_inserted, c.rows_updated, c.rows_unchanged, r.quarantine_uri, r.started_at, GETDATE()
FROM stage_run r
CROSS JOIN (
    SELECT COALESCE(SUM(CASE WHEN t.booking_id IS NULL THEN 1 ELSE 0 END), 0) AS rows_inserted,
           COALESCE(SUM(CASE WHEN t.updated_at < s.updated_at THEN 1 ELSE 0 END), 0) AS rows_updated,
           COALESCE(SUM(CASE WHEN t.updated_at >= s.updated_at THEN 1 ELSE 0 END), 0) AS rows_unchanged
    FROM stage_bookings s
    LEFT JOIN airline.bookings t ON t.booking_id = s.booking_id
) c
;
-- "Newest wins" in Redshift's MERGE subset (no condition on WHEN MATCHED): drop the staged rows
-- that are not newer than the warehouse, then MERGE the rest.
DELETE FROM stage_bookings USING airline.bookings
WHERE stage_bookings.booking_id = airline.bookings.booking_id
  AND airline.bookings.updated_at >= stage_bookings.updated_at
;
MERGE INTO airline.bookings USING stage_bookings s
ON airline.bookings.booking_id = s.booking_id
WHEN MATCHED THEN UPDATE SET
    booking_time = s.booking_time,
    updated_at = s.updated_at,
    passenger_id = s.passenger_id,
    carrier_code = s.carrier_code,
    flight_number = s.flight_number,
    origin = s.origin,
    destination = s.destination,
    departure_time = s.departure_time,
    cabin_class = s.cabin_class,
    fare_amount = s.fare_amount,
    currency = s.currency,
    num_passengers = s.num_passengers,
    booking_status = s.booking_status,
    sales_channel = s.sales_channel,
    origin_city = s.origin_city,
    origin_country = s.origin_country,
    destination_city = s.destination_city,
    destination_country = s.destination_country,
    distance_km = s.distance_km,
    is_international = s.is_international,
    departure_time_utc = s.departure_time_utc,
    lead_time_days = s.lead_time_days,
    source_file = s.source_file,
    execution_id = s.execution_id,
    ingested_at = s.ingested_at
WHEN NOT MATCHED THEN INSERT VALUES (
    s.booking_id, s.booking_time, s.updated_at, s.passenger_id, s.carrier_code, s.flight_number,
    s.origin, s.destination, s.departure_time, s.cabin_class, s.fare_amount, s.currency,
    s.num_passengers, s.booking_status, s.sales_channel, s.origin_city, s.origin_country,
    s.destination_city, s.destination_country, s.distance_km, s.is_international,
    s.departure_time_utc, s.lead_time_days, s.source_file, s.execution_id, s.ingested_at
)
;
-- The last statement's result is the run's load counts (read with GetStatementResult <id>:<n>).
SELECT rows_inserted, rows_updated, rows_unchanged
FROM airline.ingestion_runs
WHERE execution_id = (SELECT execution_id FROM stage_run)
;

-- The load of one run, executed by the Glue job as ONE Redshift Data API batch (one transaction).
-- Placeholders, filled by the job with values it builds itself (never from file contents or the
-- object key): {staging_uri} = <data root>/staging/<execution id>/  and  {iam_role} = the COPY role.
-- Statements are separated by a line holding only ";". Keep to Redshift's SQL: the local runtime
-- runs the same text on PostgreSQL, which accepts more (see tests that hold this file to Redshift).

-- Serialize loads, never readers: LOCK only the loads' own mutex table, which nothing else reads.
-- Redshift does not enforce primary keys, so two concurrent MERGEs of the same new booking_id
-- would both insert it. The LOCK comes first because Redshift takes a transaction's snapshot at
-- its first COPY, CREATE TABLE or SELECT (LOCK is none of them): taken later, a waiting load would
-- MERGE against a snapshot from before the previous load's commit (docs/aws-notes.md). Readers of
-- airline.* keep reading the last committed version until this transaction commits.
LOCK airline.load_mutex
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
    source_file      VARCHAR(1100),  -- s3:// + 63-byte bucket + / + 1,024-byte key (migrations/0001)
    rows_read        BIGINT,
    rows_quarantined BIGINT,
    rows_duplicate   BIGINT,
    rows_staged      BIGINT,
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
-- What each staged row will do, decided once (docs/data-contract.md, "Loading"): a new key is
-- inserted; a newer updated_at updates; the same updated_at updates when the booking's content
-- differs (the later ingestion wins) and is unchanged when it is identical; an older one is stale.
CREATE TEMP TABLE stage_outcome AS
SELECT s.booking_id,
       CASE WHEN t.booking_id IS NULL THEN 'inserted'
            WHEN s.updated_at > t.updated_at THEN 'updated'
            WHEN s.updated_at < t.updated_at THEN 'stale'
            WHEN s.booking_time = t.booking_time AND s.passenger_id = t.passenger_id
                 AND s.carrier_code = t.carrier_code AND s.flight_number = t.flight_number
                 AND s.origin = t.origin AND s.destination = t.destination
                 AND s.departure_time = t.departure_time AND s.cabin_class = t.cabin_class
                 AND s.fare_amount = t.fare_amount AND s.currency = t.currency
                 AND s.num_passengers = t.num_passengers AND s.booking_status = t.booking_status
                 AND (s.sales_channel = t.sales_channel
                      OR (s.sales_channel IS NULL AND t.sales_channel IS NULL))
            THEN 'unchanged'
            ELSE 'updated'
       END AS outcome
FROM stage_bookings s
LEFT JOIN airline.bookings t ON t.booking_id = s.booking_id
;
-- A retried job of the same execution replaces its audit row.
DELETE FROM airline.ingestion_runs USING stage_run
WHERE airline.ingestion_runs.execution_id = stage_run.execution_id
;
INSERT INTO airline.ingestion_runs (
    execution_id, source_file, status, rows_read, rows_quarantined, rows_duplicate, rows_staged,
    rows_inserted, rows_updated, rows_unchanged, rows_stale, quarantine_uri, started_at, loaded_at
)
SELECT r.execution_id, r.source_file, 'SUCCEEDED', r.rows_read, r.rows_quarantined,
       r.rows_duplicate, r.rows_staged, c.rows_inserted, c.rows_updated, c.rows_unchanged,
       c.rows_stale, r.quarantine_uri, r.started_at, GETDATE()
FROM stage_run r
CROSS JOIN (
    SELECT COALESCE(SUM(CASE WHEN outcome = 'inserted' THEN 1 ELSE 0 END), 0) AS rows_inserted,
           COALESCE(SUM(CASE WHEN outcome = 'updated' THEN 1 ELSE 0 END), 0) AS rows_updated,
           COALESCE(SUM(CASE WHEN outcome = 'unchanged' THEN 1 ELSE 0 END), 0) AS rows_unchanged,
           COALESCE(SUM(CASE WHEN outcome = 'stale' THEN 1 ELSE 0 END), 0) AS rows_stale
    FROM stage_outcome
) c
;
-- Every count is checked before anything is merged: COPY loaded exactly the rows the job staged,
-- each staged row has one outcome, and rows_read adds up. Otherwise the CAST of the message
-- fails the statement, which rolls the whole transaction back (Redshift SQL has no RAISE
-- outside a procedure); the job names this check by its column, load_counts_check.
SELECT CAST(CASE
    WHEN k.runs = 1 AND k.copied = k.staged AND k.classified = k.staged
         AND k.rows_read = k.quarantined + k.duplicate + k.staged
         AND k.rows_read = k.quarantined + k.duplicate + k.applied
    THEN '0'
    ELSE 'load counts do not add up: COPY loaded ' || CAST(k.copied AS VARCHAR(20))
         || ' rows, the job staged ' || COALESCE(CAST(k.staged AS VARCHAR(20)), 'none')
         || ', outcomes ' || CAST(k.classified AS VARCHAR(20))
         || ', run rows ' || CAST(k.runs AS VARCHAR(20))
         || ', rows_read ' || COALESCE(CAST(k.rows_read AS VARCHAR(20)), 'none')
END AS INTEGER) AS load_counts_check
FROM (
    SELECT (SELECT COUNT(*) FROM stage_bookings) AS copied,
           (SELECT COUNT(*) FROM stage_outcome) AS classified,
           (SELECT COUNT(*) FROM stage_run) AS runs,
           (SELECT MAX(rows_staged) FROM stage_run) AS staged,
           (SELECT MAX(rows_read) FROM stage_run) AS rows_read,
           (SELECT MAX(rows_quarantined) FROM stage_run) AS quarantined,
           (SELECT MAX(rows_duplicate) FROM stage_run) AS duplicate,
           (SELECT MAX(rows_inserted + rows_updated + rows_unchanged + rows_stale)
            FROM airline.ingestion_runs
            WHERE execution_id = (SELECT MAX(execution_id) FROM stage_run)) AS applied
) k
;
-- Redshift's MERGE takes no condition on WHEN MATCHED: drop the staged rows that must not be
-- applied (stale, or unchanged), then MERGE the rest.
DELETE FROM stage_bookings USING stage_outcome
WHERE stage_bookings.booking_id = stage_outcome.booking_id
  AND stage_outcome.outcome IN ('unchanged', 'stale')
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
SELECT rows_inserted, rows_updated, rows_unchanged, rows_stale, rows_staged
FROM airline.ingestion_runs
WHERE execution_id = (SELECT execution_id FROM stage_run)
;

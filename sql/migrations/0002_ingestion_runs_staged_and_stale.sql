-- Migration 0002: airline.ingestion_runs counts the rows the job staged and the stale rows the
-- load did not apply (rows_read = rows_quarantined + rows_duplicate + rows_staged, and
-- rows_staged = rows_inserted + rows_updated + rows_unchanged + rows_stale).
-- Redshift adds one column per ALTER TABLE, and a NOT NULL column needs a DEFAULT (the rows
-- already there get it). Runs before this migration counted stale rows as unchanged and staged
-- every row they classified: their rows_staged is that sum, their rows_stale 0.
ALTER TABLE airline.ingestion_runs ADD COLUMN rows_staged BIGINT DEFAULT 0 NOT NULL;

ALTER TABLE airline.ingestion_runs ADD COLUMN rows_stale BIGINT DEFAULT 0 NOT NULL;

UPDATE airline.ingestion_runs SET rows_staged = rows_inserted + rows_updated + rows_unchanged;

-- Migration 0003: the loads' mutex. Every load LOCKs it as its first statement, so loads run one
-- after another while readers of the other tables are never blocked (nothing reads it; it holds
-- no rows).
CREATE TABLE airline.load_mutex (
    held_by VARCHAR(128)
)
DISTSTYLE ALL;

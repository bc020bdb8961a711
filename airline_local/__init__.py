"""Local runtime: the airline booking pipeline offline, on moto, local Spark and PostgreSQL."""

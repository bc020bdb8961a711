"""Local stand-ins for AWS Glue: the crawler, the job runner and its warm Spark workers."""

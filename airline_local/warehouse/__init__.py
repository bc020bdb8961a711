"""Local stand-in for Amazon Redshift Serverless: PostgreSQL, the Redshift SQL translation and the Data API."""

"""Local stand-ins for AWS behaviour that moto does not emulate."""

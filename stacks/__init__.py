"""AWS CDK app of the airline booking pipeline (one stack, one construct module per concern)."""

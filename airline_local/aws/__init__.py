"""Local stand-ins for AWS services: the moto emulator and its patches, CloudFormation resolution, the SNS mailbox and the IAM check."""

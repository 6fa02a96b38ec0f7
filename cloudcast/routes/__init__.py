"""Stage 6: routes — AWS route tables (boto3) and host routes on other sites."""

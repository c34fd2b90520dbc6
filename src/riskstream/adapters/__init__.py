"""Adapters at the edge: Kafka, Redis and their in-memory stand-ins."""

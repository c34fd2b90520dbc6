"""The Kafka adapter: confluent-kafka's producer and consumer behind the bus ports,
with librdkafka's errors translated to :class:`~riskstream.errors.BusError`."""

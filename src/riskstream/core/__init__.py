"""The pure core: detectors, monitors, incident rules and playbooks.

Nothing in here knows that Kafka or Redis exist.  It imports the standard library,
River and :mod:`riskstream.errors` only, so the same logic runs in the embedded
demo, in the Kafka processor and in tests without any server.
"""

"""refka: a Kafka broker and client as annotated teaching code."""

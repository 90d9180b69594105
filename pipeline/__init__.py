"""The Beam pipeline: a folder of colour images -> sharded TFRecords of L, ab and embeddings."""

"""Koala's shared core: the colour math, the record schema, image geometry and the embedder.

Everything that the pipeline, the trainer and serving must agree on lives here, once, so that
data flows one way (pipeline -> records -> trainer -> SavedModel -> serving) without each stage
re-deriving the conventions of the one before it.
"""

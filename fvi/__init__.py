"""FVI shared core: one implementation of the schema, charset, geometry and pre/post-processing.

Imported by the Triton Python-backend models, the in-process reference pipeline, the training
code and the tests, so that the served ensemble and the reference can never drift apart.
"""

"""The query core: the one place where a filter means something.

Every entry point (gRPC, the REST dialects) turns its request into a
`model.Query` through `validate`, and every store compiles that one model.
"""

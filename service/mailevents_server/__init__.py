"""mailevents server: the gRPC service, the query core, the stores and the REST-compat shim."""

__version__ = "0.1.0"

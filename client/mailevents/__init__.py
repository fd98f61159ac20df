"""mailevents client: generated gRPC stubs (`mailevents.v1`), a typed async client and the CLI."""

__version__ = "0.1.0"

"""The operator console: a small web app over the gallery's gRPC API, the camera tiles and the audit log."""

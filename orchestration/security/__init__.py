"""Access control and transport security: roles and bearer tokens, development certificates, TLS settings."""

"""The HTTP plumbing: request reading, limits, uploads, rate limiting and middleware."""

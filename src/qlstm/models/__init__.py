"""Classical and quantum sequence models."""

"""The HTTP face: the text exposition, the endpoints, TLS and basic auth."""

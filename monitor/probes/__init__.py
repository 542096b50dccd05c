"""One module per layer; each exposes one `probe_<layer>` coroutine writing into a ProbeTrace."""

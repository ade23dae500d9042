"""racehub: one normalized store between registration platforms and timing systems."""

"""Self-contained scripts a user copies to a real device (stdlib + numpy + the device's runtime)."""

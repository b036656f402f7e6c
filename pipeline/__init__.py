"""Edge model pipeline: intake, optimization, export, validation and measurement of on-device models."""

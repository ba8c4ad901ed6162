"""clinicwatch package."""

"""clinicwatch test suite (a package, so scheduler jobs can name tests.test_scheduler:...)."""

"""`python -m monitor` runs the clinicwatch command line."""

from monitor.cli import main

main()

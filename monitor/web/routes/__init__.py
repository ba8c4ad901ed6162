"""Routers of the review app: sign-in, HTML pages, user administration, JSON API."""

"""The HTTP API: create_app() and one router per actor."""

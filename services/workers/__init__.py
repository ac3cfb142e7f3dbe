"""Celery app, thin tasks, and the pipeline they call (pipeline.py imports no Celery)."""

"""Dramatiq actors: the jobs layer. Actors are declared when Django sets up (jobs.apps), after the broker is."""

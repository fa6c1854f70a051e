"""A labelled corpus of real Alembic migrations, rendered to PostgreSQL SQL, for the ``phases``
benchmark: rendering them (in a private venv), loading the hand-written labels, running judges.
"""

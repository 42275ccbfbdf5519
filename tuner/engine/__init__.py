"""The study's decisions, as plain Python over plain data: no Ray is imported here."""

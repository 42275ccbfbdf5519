"""Where trials run: each backend turns the engine's actions into running trials and their events."""

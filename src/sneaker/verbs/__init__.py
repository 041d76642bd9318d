"""The verbs: each composes the model, sources and sinks; the CLI only parses flags."""

"""Small pieces every layer may use: progress reporting, closing, optional speed-ups."""

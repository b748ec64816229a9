"""Stage 1: self-supervised multi-timeframe masked reconstruction pretraining (Lightning)."""

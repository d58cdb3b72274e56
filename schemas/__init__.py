"""pandera DataFrameModels, one module per source, named by the state a frame is in."""

"""Small helpers every part may use: result tables, atomic file writes, argparse types."""

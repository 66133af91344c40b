"""cupy._core of the stand-in: only _routines_linalg's compute-type switch (tinycnn.cuda.allow_tf32)."""

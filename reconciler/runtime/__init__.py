"""Code that runs inside the serving pods: Python standard library only."""

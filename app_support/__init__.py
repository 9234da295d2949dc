"""Helpers of the Gradio app (``app.py``): sessions, plots and the tab callbacks.

Nothing here holds product logic: every callback calls a library function that
the ``splatops`` CLI calls too.
"""

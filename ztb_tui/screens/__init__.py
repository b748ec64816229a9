"""Console screens: runs list, run view, and the modal dialogs (confirm, stop, launch)."""

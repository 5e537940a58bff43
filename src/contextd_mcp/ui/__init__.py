"""The local web page (``/ui/``): see, curate and rate-check what the agents learned (issue 17)."""
